"""One outbound policy for every URL the gateway contacts on a client's or config's behalf.

The policy itself first (URL spellings and address ranges), then every vector through
``portkey-mw serve``: custom hosts, image fetches, webhooks, ``validUrls`` and token
endpoints, each tried with every bypass form -- private and metadata addresses, NAT64 and
IPv4-compatible IPv6, decimal, octal, hex and short IPv4, trailing dots, userinfo -- and a
redirect from an allowed host. The fake upstream on 127.0.0.1 plays an allowed ("public")
host; the detector on 127.0.0.2 is a host the policy refuses, and must see nothing. Last, a
rebinding resolver shows that the address checked is the address connected to.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from portkey_mw import Gateway, ServerSettings
from portkey_mw.auth.outbound import (
    AllowList,
    Destination,
    OutboundPolicy,
    address_kind,
)
from portkey_mw.errors import DestinationNotAllowed, InvalidConfig
from portkey_mw.transport import AiohttpTransport
from tests import planted
from tests.conftest import (
    RunningGateway,
    ThreadedServer,
    server_file,
    standalone_gateway,
)
from tests.detector import Detector
from tests.fake_upstream import FakeUpstream, Reply
from tests.test_google import RESPONSE
from tests.test_vertex_ai import service_account

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"

# -- the policy ---------------------------------------------------------------------------------

#: URL forms that reach 127.0.0.2 (or another refused address) by another spelling; {p} is
#: a port
BYPASS_FORMS = [
    "http://127.0.0.2:{p}/x",  # the plain address
    "http://[::ffff:127.0.0.2]:{p}/x",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:2]:{p}/x",  # the same, in hex
    "http://[::127.0.0.2]:{p}/x",  # IPv4-compatible IPv6
    "http://[64:ff9b::7f00:2]:{p}/x",  # NAT64
    "http://[64:ff9b:1::7f00:2]:{p}/x",  # local-use NAT64
    "http://[2002:7f00:2::]:{p}/x",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffd]:{p}/x",  # Teredo
    "http://2130706434:{p}/x",  # decimal
    "http://0x7f000002:{p}/x",  # hex
    "http://0177.0.0.2:{p}/x",  # octal
    "http://127.2:{p}/x",  # short
    "http://127.0.0.2.:{p}/x",  # trailing dot
    "http://user@127.0.0.2:{p}/x",  # userinfo
    "http://127.0.0.1@127.0.0.2:{p}/x",  # userinfo posing as the host
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://100.100.100.200/latest/meta-data/",  # carrier-grade NAT (Alibaba metadata)
    "http://10.0.0.1:{p}/x",  # private
    "http://[fe80::1]:{p}/x",  # link-local IPv6
    "http://[::]:{p}/x",  # unspecified
    "http://0.0.0.0:{p}/x",  # 'this network'
    "http://224.0.0.1:{p}/x",  # multicast
    "http://240.0.0.1:{p}/x",  # reserved
    "file:///etc/passwd",  # not http(s)
    "gopher://127.0.0.1:{p}/x",
]
#: forms that only name loopback: refused for fetches, allowed for custom hosts
LOOPBACK_FORMS = {0, 1, 2, 12}


@pytest.mark.parametrize("form", BYPASS_FORMS)
def test_fetches_refuse_every_bypass_form(form: str) -> None:
    policy = OutboundPolicy.from_settings(["127.0.0.1"], environ={})
    with pytest.raises(DestinationNotAllowed):
        policy.check_url(form.format(p=8080), Destination.FETCH)


@pytest.mark.parametrize("index", range(len(BYPASS_FORMS)))
def test_custom_hosts_allow_loopback_and_nothing_else(index: int) -> None:
    url = BYPASS_FORMS[index].format(p=8080)
    policy = OutboundPolicy.from_settings(environ={})
    if index in LOOPBACK_FORMS:
        policy.check_url(url, Destination.PROVIDER)
        closed = OutboundPolicy.from_settings(loopback_custom_hosts=False, environ={})
        with pytest.raises(DestinationNotAllowed):
            closed.check_url(url, Destination.PROVIDER)
    else:
        with pytest.raises(DestinationNotAllowed):
            policy.check_url(url, Destination.PROVIDER)


def test_public_addresses_and_names_pass() -> None:
    policy = OutboundPolicy.from_settings(environ={})
    for url in ("https://api.openai.com/v1", "http://8.8.8.8/x", "https://[2606:4700::1111]/"):
        policy.check_url(url, Destination.FETCH)
    # A name is checked when it is resolved, by the pool's resolver.
    policy.check_url("http://localhost:8080/x", Destination.FETCH)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("64:ff9b::a00:1", "NAT64"),
        ("::10.0.0.1", "IPv4-compatible"),
        ("fc00::1", "unique local (private)"),
        ("ff02::1", "multicast"),
        ("198.18.0.1", "benchmarking"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_the_operators_allow_list() -> None:
    allow = ["10.1.0.0/16", "vllm.internal", "*.corp.example", "fd12::5"]
    policy = OutboundPolicy.from_settings(allow, environ={})
    for host, address in [
        ("x", "10.1.2.3"),
        ("vllm.internal", "10.9.9.9"),
        ("a.corp.example", "192.168.1.1"),
        ("x", "fd12::5"),
    ]:
        assert policy.refusal(host, ipaddress.ip_address(address), Destination.FETCH) is None
    refused = policy.refusal("corp.example", ipaddress.ip_address("10.9.9.9"), Destination.FETCH)
    assert refused is not None and "outbound.allow" in refused
    with pytest.raises(InvalidConfig, match=r"outbound\.allow"):
        OutboundPolicy.from_settings(["http://not a host/"], environ={})


def test_trusted_custom_hosts_is_honoured_for_custom_hosts_only() -> None:
    policy = OutboundPolicy.from_settings(
        environ={"TRUSTED_CUSTOM_HOSTS": "my-llm.internal, 10.2.0.0/16"}
    )
    private = ipaddress.ip_address("10.2.3.4")
    assert policy.refusal("my-llm.internal", private, Destination.PROVIDER) is None
    assert policy.refusal("other", private, Destination.PROVIDER) is None
    assert policy.refusal("my-llm.internal", private, Destination.FETCH) is not None


# -- every vector, through portkey-mw serve -----------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> Iterator[Detector]:
    with Detector() as running:
        yield running


def token_accounts(detector: Detector) -> dict[str, dict[str, Any]]:
    """Server configs whose service account names a refused token endpoint."""
    forms = {
        "plain": f"{detector.url}/token",
        "nat64": f"http://[64:ff9b::7f00:2]:{detector.port}/token",
        "decimal": f"http://2130706434:{detector.port}/token",
        "mapped": f"http://[::ffff:127.0.0.2]:{detector.port}/token",
    }
    configs = {}
    for name, uri in forms.items():
        account = service_account(uri)
        planted.plant(account["private_key"])
        configs[f"token-{name}"] = {
            "provider": "vertex-ai",
            "vertex_project_id": "p",
            "custom_host": f"{detector.url}/v1",
            "vertex_service_account_json": account,
        }
    return configs


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream,
    detector: Detector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningGateway]:
    gemini = {
        "provider": "google",
        "api_key": planted.GOOGLE_KEY,
        "custom_host": f"{upstream_server.host_url}/v1beta",
    }
    path = server_file(
        tmp_path_factory.mktemp("outbound"),
        upstream_server,
        configs={"gemini": gemini, **token_accounts(detector)},
        # 127.0.0.1 (the fake upstream) plays a public host; 127.0.0.2 stays refused.
        outbound={"allow": ["127.0.0.1"], "max_valid_urls": 5},
    )
    with standalone_gateway(path) as running:
        yield running


def chat(gateway: RunningGateway, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions", json=body, headers=headers, timeout=30
    )


def with_image(url: str) -> dict[str, Any]:
    part = {"type": "image_url", "image_url": {"url": url}}
    return {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [part]}]}


@pytest.mark.parametrize("form", BYPASS_FORMS)
def test_image_urls_pass_the_policy(
    gateway: RunningGateway, fake: FakeUpstream, detector: Detector, form: str
) -> None:
    before = detector.hits
    reply = chat(gateway, with_image(form.format(p=detector.port)), {"x-portkey-config": "gemini"})
    assert reply.status_code in (400, 403), reply.text
    assert reply.json()["error"]["code"] in {"destination_not_allowed", "invalid_image_url"}
    assert detector.hits == before
    assert fake.requests == []  # Gemini was never called


def test_an_image_redirect_is_checked_again(
    gateway: RunningGateway, fake: FakeUpstream, detector: Detector
) -> None:
    fake.script(
        "/img/moved", Reply(status=302, headers={"location": f"{detector.url}/x"}, body=b"")
    )
    before = detector.hits
    reply = chat(gateway, with_image(f"{fake.host_url}/img/moved"), {"x-portkey-config": "gemini"})
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["code"] == "destination_not_allowed"
    assert detector.hits == before
    # An allowed redirect is followed, each hop through the policy.
    fake.script("/img/moved", Reply(status=302, headers={"location": "/img/cat.png"}, body=b""))
    fake.script("/img/cat.png", Reply(body=PNG, content_type="image/png"))
    fake.script(GENERATE, Reply(json=RESPONSE))
    reply = chat(gateway, with_image(f"{fake.host_url}/img/moved"), {"x-portkey-config": "gemini"})
    assert reply.status_code == 200, reply.text
    sent = fake.requests[-1].json()["contents"][0]["parts"][0]
    assert sent["inlineData"]["data"] == base64.b64encode(PNG).decode()


def test_an_image_is_never_read_past_its_limit(gateway: RunningGateway, fake: FakeUpstream) -> None:
    big = b"\x89PNG" + b"\x00" * (20 * 1024 * 1024)
    fake.script("/img/big.png", Reply(body=big, content_type="image/png"))
    declared = chat(
        gateway, with_image(f"{fake.host_url}/img/big.png"), {"x-portkey-config": "gemini"}
    )
    assert declared.status_code == 400 and declared.json()["error"]["code"] == "image_too_large"
    # Without a Content-Length, the read stops at the limit.
    chunks = [b"\x00" * (1024 * 1024)] * 21
    fake.script("/img/chunked.png", Reply(stream=chunks, done=False, content_type="image/png"))
    chunked = chat(
        gateway, with_image(f"{fake.host_url}/img/chunked.png"), {"x-portkey-config": "gemini"}
    )
    assert chunked.status_code == 400 and chunked.json()["error"]["code"] == "image_too_large"
    assert all(r.path != GENERATE for r in fake.requests)


def guarded(hook: dict[str, Any], fake: FakeUpstream) -> dict[str, str]:
    """An inline config whose input guardrail is ``hook`` (the client's own key)."""
    config = {
        "provider": "openai",
        "api_key": "sk-client",
        "custom_host": fake.base_url,
        "input_guardrails": [hook],
    }
    return {"x-portkey-config": orjson.dumps(config).decode()}


def check_result(reply: httpx.Response) -> dict[str, Any]:
    hooks = reply.json()["hook_results"]["before_request_hooks"]
    check: dict[str, Any] = hooks[0]["checks"][0]
    return check


@pytest.mark.parametrize("form", BYPASS_FORMS)
def test_webhooks_pass_the_policy(
    gateway: RunningGateway, fake: FakeUpstream, detector: Detector, form: str
) -> None:
    before = detector.hits
    hook = {"default.webhook": {"webhookURL": form.format(p=detector.port)}}
    reply = chat(
        gateway,
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        guarded(hook, fake),
    )
    if reply.status_code == 400:  # not even a URL the check accepts
        assert reply.json()["error"]["code"] == "invalid_config"
    else:
        assert reply.status_code == 200, reply.text
        result = check_result(reply)
        assert result["verdict"] is False and "will not contact" in result["error"]["message"]
    assert detector.hits == before


def test_a_config_cannot_scan_ports(
    gateway: RunningGateway, fake: FakeUpstream, detector: Detector
) -> None:
    """A refused host is reported the same whether something listens there or not."""
    from tests.conftest import free_port

    messages = []
    for port in (detector.port, free_port()):
        hook = {"default.webhook": {"webhookURL": f"http://127.0.0.2:{port}/hook"}}
        reply = chat(
            gateway,
            {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            guarded(hook, fake),
        )
        messages.append(check_result(reply)["error"]["message"].replace(str(port), "PORT"))
    assert messages[0] == messages[1]
    text = f"see http://127.0.0.2:{detector.port}/a and http://127.0.0.2:{free_port()}/b"
    reply = chat(
        gateway,
        {"model": "m", "messages": [{"role": "user", "content": text}]},
        guarded({"default.validUrls": {}}, fake),
    )
    data = check_result(reply)["data"]
    assert data["validUrls"] == [] and len(data["invalidUrls"]) == 2
    assert detector.hits == 0


def test_valid_urls_fan_out_is_bounded(gateway: RunningGateway, fake: FakeUpstream) -> None:
    urls = " ".join(f"{fake.host_url}/page/{i}" for i in range(30))
    reply = chat(
        gateway,
        {"model": "m", "messages": [{"role": "user", "content": urls}]},
        guarded({"default.validUrls": {}}, fake),
    )
    probed = [r for r in fake.requests if r.path.startswith("/page/")]
    assert len(probed) == 5  # outbound.max_valid_urls
    result = check_result(reply)
    assert result["verdict"] is False and len(result["data"]["uncheckedUrls"]) == 25


@pytest.mark.parametrize("form", ["plain", "nat64", "decimal", "mapped"])
def test_token_endpoints_pass_the_policy(
    gateway: RunningGateway, detector: Detector, form: str
) -> None:
    before = detector.hits
    reply = chat(
        gateway,
        {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]},
        {"x-portkey-config": f"token-{form}"},
    )
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["code"] == "destination_not_allowed"
    assert detector.hits == before


@pytest.mark.parametrize(
    "host",
    [
        "http://10.0.0.1:8000/v1",
        "http://169.254.169.254/v1",
        "http://[64:ff9b::7f00:2]:{p}/v1",
        "http://2130706434:{p}/v1",
        "http://x:y@127.0.0.2:{p}/v1",
    ],
)
def test_custom_hosts_pass_the_policy(
    gateway: RunningGateway, detector: Detector, host: str
) -> None:
    """Even with the client's own key, a custom host must be public or loopback."""
    before = detector.hits
    reply = chat(
        gateway,
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        {
            "x-portkey-provider": "openai",
            "authorization": "Bearer sk-client",
            "x-portkey-custom-host": host.format(p=detector.port),
        },
    )
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["code"] == "destination_not_allowed"
    assert detector.hits == before


# -- rebinding ---------------------------------------------------------------------------------


def answer(host: str, address: str, port: int) -> list[ResolveResult]:
    """A resolver's answer: ``host`` is at ``address``."""
    return [{"hostname": host, "host": address, "port": port, "family": 2, "proto": 0, "flags": 0}]


class RebindingResolver(AbstractResolver):
    """Answers an allowed address the first time a name is looked up, a refused one after:
    the DNS answer an attacker would flip between a check and the connect."""

    def __init__(self) -> None:
        self.lookups = 0

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        self.lookups += 1
        return answer(host, "127.0.0.1" if self.lookups == 1 else "127.0.0.2", port)

    async def close(self) -> None:
        return None


def test_rebinding_cannot_slip_past(tmp_path: Path, fake: FakeUpstream) -> None:
    """Every connection resolves through the policy: the second answer (refused) is caught
    although the first (allowed) one passed."""
    with Detector(port=fake.port) as detector:  # 127.0.0.2, the fake upstream's port
        resolver = RebindingResolver()
        settings = ServerSettings.from_mapping(
            {
                "outbound": {"allow": ["127.0.0.1"]},
                "configs": {
                    "gemini": {
                        "provider": "google",
                        "api_key": "AIza-client",
                        "custom_host": f"{fake.host_url}/v1beta",
                    }
                },
            }
        )
        transport = AiohttpTransport(
            policy=OutboundPolicy.from_settings(["127.0.0.1"]), resolver=resolver, dns_cache=None
        )
        gateway = Gateway(settings, transport=transport)
        image = f"http://rebind.test:{fake.port}/img/cat.png"
        fake.script(
            "/img/cat.png",
            Reply(body=PNG, content_type="image/png", headers={"connection": "close"}),
        )
        fake.script(GENERATE, Reply(json=RESPONSE))
        with ThreadedServer(gateway) as server:
            url = f"{server.url}/v1/chat/completions"
            first = httpx.post(url, json=with_image(image), headers={"x-portkey-config": "gemini"})
            assert first.status_code == 200, first.text
            second = httpx.post(url, json=with_image(image), headers={"x-portkey-config": "gemini"})
        assert second.status_code == 403, second.text
        assert "'rebind.test' resolves to a loopback address" in second.json()["error"]["message"]
        assert resolver.lookups == 2
        assert detector.hits == 0


def test_a_name_that_resolves_to_a_refused_address_is_refused() -> None:
    class Private(RebindingResolver):
        async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
            return answer(host, "10.0.0.7", port)

    async def scenario() -> None:
        transport = AiohttpTransport(resolver=Private())
        try:
            from portkey_mw.fetch import Fetcher

            with pytest.raises(
                DestinationNotAllowed, match=r"'internal\.example' resolves to a private address"
            ):
                await Fetcher(transport).request(
                    "GET", "http://internal.example/x", time_limit=5, max_bytes=10
                )
        finally:
            await transport.aclose()

    asyncio.run(scenario())


def test_allow_list_entries_are_hosts_or_networks() -> None:
    parsed = AllowList.parse(["Vllm.Internal.", "*.corp.example", "10.0.0.0/8", "[fd00::1]"], "x")
    assert parsed.hosts == frozenset({"vllm.internal"})
    assert parsed.domains == (".corp.example",)
    assert len(parsed.networks) == 2


def test_a_transport_passed_in_gets_the_server_files_policy() -> None:
    settings = ServerSettings.from_mapping({"outbound": {"allow": ["10.9.0.0/16"]}})
    adopted = Gateway(settings, transport=AiohttpTransport()).transport
    private = ipaddress.ip_address("10.9.1.1")
    assert adopted.policy.refusal("x", private, Destination.FETCH) is None
    own = OutboundPolicy.from_settings(environ={})
    kept = Gateway(settings, transport=AiohttpTransport(policy=own)).transport
    assert kept.policy is own


def test_one_request_cannot_have_many_images_fetched(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": f"{fake.host_url}/img/{i}.png"}}
        for i in range(21)
    ]
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": parts}]}
    reply = chat(gateway, body, {"x-portkey-config": "gemini"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "too_many_images"
    assert fake.requests == []  # refused before anything was fetched
    # Twenty images are fine, but not 32 MiB of them: the budget is for the whole request.
    big = b"\x89PNG" + b"\x00" * (12 * 1024 * 1024)
    for index in range(3):
        fake.script(f"/img/{index}.png", Reply(body=big, content_type="image/png"))
    reply = chat(
        gateway,
        {**body, "messages": [{"role": "user", "content": parts[:3]}]},
        {"x-portkey-config": "gemini"},
    )
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "too_many_images"
    assert all(r.path != GENERATE for r in fake.requests)

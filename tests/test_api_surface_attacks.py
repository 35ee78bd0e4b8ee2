"""Attacks on the newer API surface (``/v1/responses`` and its stored responses, files and
batches, multipart, pass-through, realtime) by a client with no gateway key or a
low-privilege one: each test is a request that once got (or could get) a 500, a
credential sent where the operator did not bind it, or another key's data."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import websockets
import yaml
from websockets.exceptions import InvalidStatus

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

HELD_KEY = "sk-red-team-held-0123456789"


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(
        tmp_path_factory.mktemp("red"),
        upstream_server,
        configs={
            "compat": {
                "provider": "together-ai",
                "api_key": "t",
                "custom_host": upstream_server.host_url,
            },
            # a server-held key bound to OpenAI's own host
            "openai-held": {"provider": "openai", "api_key": HELD_KEY},
        },
        responses={"store": "memory"},
    )
    with mounted_gateway(path) as running:
        yield running


def stored_response(gateway: RunningGateway) -> str:
    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="unused",
        max_retries=0,
        default_headers={"x-portkey-config": "compat"},
    )
    return client.responses.create(model="m", input="hello there").id


@pytest.mark.parametrize(
    "query",
    [
        "limit=%C2%B2",  # '²': str.isdigit() is true, int() refuses it
        "limit=" + "1" * 5000,  # more digits than int() converts
        "limit=%EF%BC%91",  # a full-width '1'
        "limit=-1",
        "limit=0",
        "order=sideways",
    ],
)
def test_input_items_bad_limit_is_400_not_500(
    gateway: RunningGateway, fake: FakeUpstream, query: str
) -> None:
    response_id = stored_response(gateway)
    answer = httpx.get(f"{gateway.base_url}/responses/{response_id}/input_items?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] in ("limit", "order")


@pytest.mark.parametrize("value", [b"\xb2", b"1" * 5000, b"\xef\xbc\x91"])
@pytest.mark.parametrize("route", ["/proxy/models", "/responses", "/files"])
def test_non_ascii_request_timeout_is_400_not_500(
    gateway: RunningGateway, fake: FakeUpstream, value: bytes, route: str
) -> None:
    """``x-portkey-request-timeout: ²`` (a byte HTTP allows in a header value, which
    ``str.isdigit`` calls a digit) once reached ``int()`` and answered 500 on every route."""
    answer = httpx.request(
        "POST" if route == "/responses" else "GET",
        gateway.base_url + route,
        headers=[
            (b"x-portkey-config", b"compat"),
            (b"x-portkey-request-timeout", value),
            (b"content-type", b"application/json"),
        ],
        content=b'{"model": "m", "input": "hi"}' if route == "/responses" else None,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request_timeout"
    assert not fake.requests


@pytest.mark.parametrize("text", ["²", "\uff11", "1" * 5000, "-1", "+1", " 1", "", "0x10"])
def test_whole_number_takes_ascii_digits_only(text: str) -> None:
    from portkey_mw.bounds import whole_number

    assert whole_number(text) is None
    assert whole_number("0") == 0 and whole_number("8787") == 8787


@pytest.mark.parametrize("text", ["²", "-²", "1" * 5000])
def test_log_query_numbers_refuse_unicode_digits(text: str) -> None:
    """The log API's numeric parameters (``limit``, ``offset``...) shared the bug."""
    from portkey_mw.admin.log_params import parse_int
    from portkey_mw.errors import GatewayError

    with pytest.raises(GatewayError) as raised:
        parse_int("limit", text)
    assert raised.value.status == 400


def test_a_realtime_session_cannot_skip_a_routes_guardrails(
    tmp_path: Path, upstream_server: FakeUpstream
) -> None:
    """A config whose input guardrails deny a word protects chat; a WebSocket on the same
    config once opened with no check at all (frames are never inspected), so the word went
    to the provider. Like a pass-through or a batch, the session is now refused."""
    from tests.test_realtime import FakeRealtime, realtime_file

    deny = [{"default.contains": {"operator": "none", "words": ["forbidden"]}, "deny": True}]
    with FakeRealtime() as upstream:
        extra = {
            "provider": "openai",
            "api_key": "sk-rt-held",
            "custom_host": upstream.base_url + "/v1",
        }
        path = realtime_file(tmp_path, upstream)
        settings = yaml.safe_load(path.read_text())
        settings["configs"]["rt-guarded"] = {**extra, "input_guardrails": deny}
        path.write_text(yaml.safe_dump(settings))
        with mounted_gateway(path) as running:
            url = running.base_url.replace("http://", "ws://") + "/realtime?model=m"

            async def handshake() -> Any:
                with pytest.raises(InvalidStatus) as caught:
                    async with websockets.connect(
                        url, additional_headers={"x-portkey-config": "rt-guarded"}
                    ):
                        pass
                return caught.value.response

            answer = asyncio.run(handshake())
            assert answer.status_code == 400
            assert orjson.loads(answer.body)["error"]["code"] == "realtime_guardrails"
            assert upstream.handshakes == []


DENY = [{"default.contains": {"operator": "none", "words": ["forbidden"]}, "deny": True}]


@pytest.fixture(scope="module")
def guarded(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """A named config whose input guardrail denies the word ``forbidden``."""
    path = server_file(
        tmp_path_factory.mktemp("guarded"),
        upstream_server,
        configs={
            "guarded": {
                "provider": "openai",
                "api_key": "sk-guarded",
                "custom_host": upstream_server.base_url,
                "input_guardrails": DENY,
            }
        },
    )
    with mounted_gateway(path) as running:
        yield running


@pytest.mark.parametrize(
    ("route", "body"),
    [
        # the SDK's usual form: message items, not a string (once never checked)
        ("/responses", {"model": "m", "input": [{"role": "user", "content": "forbidden"}]}),
        (
            "/responses",
            {
                "model": "m",
                "input": [
                    {"role": "user", "content": "hi"},
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "say forbidden"}],
                    },
                ],
            },
        ),
        (
            "/responses",
            {
                "model": "m",
                "input": [{"type": "function_call_output", "call_id": "c", "output": "forbidden"}],
            },
        ),
        # text to speech: the text spoken (once never checked)
        ("/audio/speech", {"model": "tts-1", "voice": "alloy", "input": "forbidden"}),
    ],
)
def test_input_guardrails_see_responses_items_and_speech_text(
    guarded: RunningGateway, fake: FakeUpstream, route: str, body: dict[str, Any]
) -> None:
    answer = httpx.post(
        guarded.base_url + route, json=body, headers={"x-portkey-config": "guarded"}
    )
    assert answer.status_code == 446, answer.text
    assert not fake.requests


def test_an_ordinary_items_request_still_passes_the_guardrail(
    guarded: RunningGateway, fake: FakeUpstream
) -> None:
    from tests.test_responses import NATIVE_RESPONSE

    fake.script("/v1/responses", Reply(json=NATIVE_RESPONSE))
    client = openai.OpenAI(
        base_url=guarded.base_url,
        api_key="unused",
        max_retries=0,
        default_headers={"x-portkey-config": "guarded"},
    )
    made = client.responses.create(
        model="m",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}],
    )
    assert made.output_text == "native hi"
    assert fake.requests[-1].json()["input"][0]["content"][0]["text"] == "hello"


async def test_a_pass_through_answer_is_charged_to_the_budget(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """``POST /v1/proxy/chat/completions`` (not streamed) with a virtual key whose token
    budget is 1: the answer's usage was never read (a JSON answer relayed as it came), so
    the budget never ran out -- for the pass-through nor for the key's chat calls."""
    from tests.conftest import in_process
    from tests.test_spend import gateway as spend_gateway
    from tests.test_spend import make_vk, vk_subject
    from tests.test_spend_attacks import HELLO_TOKENS, MESSAGES, used

    gw = spend_gateway(tmp_path, fake)
    async with in_process(gw) as client:
        wide = await make_vk(client, fake, "wide", usage_limits={"type": "tokens"})
        answer = await client.post(
            "/v1/proxy/chat/completions",
            headers={"x-portkey-virtual-key": wide},
            json={"model": "m", "messages": MESSAGES},
        )
        assert answer.status_code == 200, answer.text
        assert await used(gw, vk_subject(gw, wide)) == HELLO_TOKENS  # the answer's own usage
        slug = await make_vk(
            client, fake, "small", usage_limits={"type": "tokens", "credit_limit": 1}
        )
        statuses = []
        for path in (
            "/v1/proxy/chat/completions",
            "/v1/proxy/chat/completions",
            "/v1/chat/completions",
        ):
            sent = await client.post(
                path,
                headers={"x-portkey-virtual-key": slug},
                json={"model": "m", "messages": MESSAGES},
            )
            await gw.settled()
            statuses.append(sent.status_code)
        assert statuses == [200, 412, 412]


def _form(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
    return {"data": fields, "files": files}


@pytest.mark.parametrize(
    ("route", "kwargs"),
    [
        (
            "/audio/transcriptions",
            _form({"model": "whisper-1"}, {"file": ("a.mp3", b"ID3-audio")}),
        ),
        ("/audio/translations", _form({"model": "whisper-1"}, {"file": ("a.mp3", b"ID3")})),
        ("/images/edits", _form({"prompt": "a hat"}, {"image": ("a.png", b"\x89PNG")})),
        ("/audio/speech", {"json": {"model": "tts-1", "voice": "alloy", "input": "hi"}}),
        ("/batches", {"json": {"input_file_id": "file-1", "endpoint": "/v1/chat/completions"}}),
        ("/responses", {"json": {"model": "m", "input": "hi"}}),
        ("/proxy/assistants", {"json": {"model": "m"}}),
        ("/fine_tuning/jobs", {"json": {"model": "m"}}),
    ],
)
@pytest.mark.parametrize(
    "steer",
    [
        {"x-portkey-custom-host": "CUSTOM"},
        # the same through an inline config naming the operator's config's key cannot be
        # written (a client never sees it), so only headers can try
        {"x-portkey-custom-host": "CUSTOM", "x-portkey-forward-headers": "authorization"},
    ],
)
def test_a_server_held_key_cannot_be_steered_on_the_new_routes(
    gateway: RunningGateway,
    fake: FakeUpstream,
    route: str,
    kwargs: dict[str, Any],
    steer: dict[str, str],
) -> None:
    """The operator's OpenAI key is bound to api.openai.com; a client's custom host (the
    fake, standing for the attacker) is refused on every multipart, binary and
    pass-through route before anything is sent."""
    headers = {
        "x-portkey-config": "openai-held",
        **{k: v.replace("CUSTOM", fake.base_url) for k, v in steer.items()},
    }
    answer = httpx.post(gateway.base_url + route, headers=headers, **kwargs)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "custom_host_not_allowed"
    assert not fake.requests
    assert HELD_KEY not in answer.text


def test_a_form_with_too_many_parts_or_a_huge_field_is_400(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """Memory: a form is refused as it is read, past 128 parts or a 256 KiB text field."""
    many = [("f" + str(i), (None, b"x")) for i in range(200)]
    answer = httpx.post(
        gateway.base_url + "/audio/transcriptions",
        headers={"x-portkey-config": "compat"},
        files=[("file", ("a.mp3", b"ID3")), *many],
    )
    assert answer.status_code == 400, answer.text
    assert "at most 128 parts" in answer.json()["error"]["message"]
    answer = httpx.post(
        gateway.base_url + "/images/edits",
        headers={"x-portkey-config": "compat"},
        data={"prompt": "p" * (300 * 1024)},
        files={"image": ("a.png", b"\x89PNG")},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "prompt"
    assert not fake.requests


@pytest.mark.parametrize(
    "path",
    ["/virtual-keys", "/api-keys", "/configs", "/admin/budgets", "/ADMIN/budgets"],
)
def test_the_pass_through_never_reaches_the_gateways_own_routes(
    gateway: RunningGateway, fake: FakeUpstream, path: str
) -> None:
    """An unmatched /v1 path is passed through, but never one of the gateway's own admin or
    control-plane paths: without the admin key those are refused, not forwarded (and
    /v1/ADMIN, not the gateway's path, goes to the provider, with the config's key)."""
    answer = httpx.get(
        gateway.base_url + path,
        headers={"x-portkey-config": "compat", "authorization": "Bearer sk-clients-own"},
    )
    if path.startswith("/ADMIN"):
        assert fake.requests and fake.requests[-1].path == "/ADMIN/budgets"  # (the base has no /v1)
        return
    assert answer.status_code in (401, 403), answer.text
    assert not fake.requests


# Audio answers without usage (tts-1, whisper-1) are estimated like chat's: the text read
# (speech's input) and the text written (a transcript), about 4 bytes a token.
@pytest.mark.parametrize("route", ["/v1/audio/speech", "/v1/audio/transcriptions"])
async def test_a_token_budget_stops_media_routes(
    tmp_path: Path, fake: FakeUpstream, route: str
) -> None:
    from tests.conftest import in_process
    from tests.test_spend import gateway as spend_gateway
    from tests.test_spend import make_vk

    gw = spend_gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "b", usage_limits={"type": "tokens", "credit_limit": 1})
        statuses = []
        for _ in range(2):
            if route.endswith("speech"):
                fake.script(route, Reply(body=b"RIFF", headers={"content-type": "audio/wav"}))
                kwargs: dict[str, Any] = {
                    "json": {"model": "tts-1", "voice": "a", "input": "hello " * 50}
                }
            else:
                fake.script(route, Reply(json={"text": "hello " * 50}))
                kwargs = {"data": {"model": "whisper-1"}, "files": {"file": ("a.mp3", b"ID3")}}
            sent = await client.post(route, headers={"x-portkey-virtual-key": slug}, **kwargs)
            await gw.settled()
            statuses.append(sent.status_code)
        assert statuses == [200, 412]


def test_the_longest_request_timeout_accepted_still_works(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """18 digits of milliseconds is accepted, and must not overflow anything downstream."""
    answer = httpx.post(
        gateway.base_url + "/chat/completions",
        headers={"x-portkey-config": "compat", "x-portkey-request-timeout": "9" * 18},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 200, answer.text
    too_long = httpx.post(
        gateway.base_url + "/chat/completions",
        headers={"x-portkey-config": "compat", "x-portkey-request-timeout": "9" * 19},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert too_long.status_code == 400, too_long.text

"""The control plane end to end, as a user drives it: the official portkey-ai SDK (sync and
async) against a real ``portkey-mw serve``, on SQLite and on a real PostgreSQL server.

An admin creates virtual keys, an API key and saved configs; a client with that API key
gets completions with the vault's key sent upstream (asserted at the fake upstream); the
same through ``model="@slug/model"`` and a saved fallback config; rotation reaches a second
process within the documented bound; revoked keys and deleted slugs are refused; a key that
does not allow config override cannot escape its config or its guardrails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import portkey_ai
import pytest

from tests import planted
from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN_KEY, OPENAI_KEY

#: how often serve processes look for changes made elsewhere, in these tests
REFRESH = 0.5
ROTATED_KEY = planted.plant("sk-planted-rotated-openai-8hJ3kL6mN9")
SECOND_KEY = planted.plant("sk-planted-second-openai-4gF7dS1aQ2")
MESSAGES = [{"role": "user", "content": "hello there"}]
AUTH_REQUIRED = {"PORTKEY_MW_AUTH": "required"}


@pytest.fixture
def serve(store_url: str, fake: FakeUpstream, tmp_path: Path) -> Iterator[RunningGateway]:
    path = server_file(tmp_path, fake, store={"url": store_url, "refresh_interval": REFRESH})
    with standalone_gateway(path, env=AUTH_REQUIRED) as running:
        yield running


def admin(gw: RunningGateway) -> portkey_ai.Portkey:
    return portkey_ai.Portkey(api_key=ADMIN_KEY, base_url=gw.base_url)


def create_virtual_key(gw: RunningGateway, fake: FakeUpstream, name: str, key: str) -> str:
    made = admin(gw).virtual_keys.create(
        name=name, provider="openai", key=key, custom_host=fake.base_url
    )
    assert made.slug
    return str(made.slug)


def create_api_key(gw: RunningGateway, **extra: Any) -> tuple[str, str]:
    made = admin(gw).api_keys.create(
        name="app", type="organisation", sub_type="service", scopes=["completions.write"], **extra
    )
    key = planted.plant(str(made.key))  # shown once: from here on, never again
    return str(made.id), key


def refused(status: int, call: Callable[[], Any], match: str = "") -> str:
    """Run a data-plane call that must fail with ``status``; the error's message. (The
    portkey-ai SDK raises its vendored openai package's errors, so match on the status.)"""
    with pytest.raises(Exception) as caught:
        call()
    assert getattr(caught.value, "status_code", None) == status, caught.value
    message = str(caught.value)
    assert match in message, message
    return message


def ask(
    client: portkey_ai.Portkey, messages: list[Any] = MESSAGES, model: str = "gpt-4o-mini"
) -> Callable[[], Any]:
    """A chat completion to run later (for :func:`refused`)."""
    return lambda: client.chat.completions.create(model=model, messages=messages)


def upstream_keys(fake: FakeUpstream) -> list[str]:
    return [r.headers.get("authorization", "") for r in fake.requests]


def test_a_virtual_key_and_an_api_key_serve_completions(
    serve: RunningGateway, fake: FakeUpstream
) -> None:
    slug = create_virtual_key(serve, fake, "openai prod", OPENAI_KEY)
    _, key = create_api_key(serve)
    client = portkey_ai.Portkey(api_key=key, virtual_key=slug, base_url=serve.base_url)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert upstream_keys(fake) == [f"Bearer {OPENAI_KEY}"] * 2
    # The gateway key identifies the client to the gateway; it never goes upstream.
    assert all(key not in str(r.headers) for r in fake.requests)


def test_the_async_client_and_a_model_naming_the_virtual_key(
    serve: RunningGateway, fake: FakeUpstream
) -> None:
    slug = create_virtual_key(serve, fake, "openai async", OPENAI_KEY)
    _, key = create_api_key(serve)

    async def run() -> None:
        client = portkey_ai.AsyncPortkey(api_key=key, base_url=serve.base_url)
        try:
            reply = await client.chat.completions.create(
                model=f"@{slug}/gpt-4o-mini", messages=MESSAGES
            )
            assert reply.choices[0].message.content
            stream = await client.chat.completions.create(
                model=f"@{slug}/gpt-4o-mini", messages=MESSAGES, stream=True
            )
            assert [c async for c in stream]
        finally:
            await client.close()

    asyncio.run(run())
    assert upstream_keys(fake) == [f"Bearer {OPENAI_KEY}"] * 2
    assert [r.json()["model"] for r in fake.requests] == ["gpt-4o-mini"] * 2


def test_a_saved_config_falls_back_across_two_virtual_keys(
    serve: RunningGateway, fake: FakeUpstream
) -> None:
    first = create_virtual_key(serve, fake, "primary", OPENAI_KEY)
    second = create_virtual_key(serve, fake, "secondary", SECOND_KEY)
    config = admin(serve).configs.create(
        name="fallback",
        config={
            "strategy": {"mode": "fallback"},
            "targets": [{"virtual_key": first}, {"virtual_key": second}],
        },
    )
    _, key = create_api_key(serve)
    fake.script("/v1/chat/completions", Reply(status=500))
    client = portkey_ai.Portkey(api_key=key, config=str(config.slug), base_url=serve.base_url)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content
    assert upstream_keys(fake) == [f"Bearer {OPENAI_KEY}", f"Bearer {SECOND_KEY}"]


def test_rotation_reaches_every_process_within_the_refresh_bound(
    store_url: str, fake: FakeUpstream, tmp_path: Path
) -> None:
    path = server_file(tmp_path, fake, store={"url": store_url, "refresh_interval": REFRESH})
    with (
        standalone_gateway(path, env=AUTH_REQUIRED) as first,
        standalone_gateway(path, env=AUTH_REQUIRED) as second,
    ):
        slug = create_virtual_key(first, fake, "rotating", OPENAI_KEY)
        _, key = create_api_key(first)
        client = portkey_ai.Portkey(api_key=key, virtual_key=slug, base_url=second.base_url)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert upstream_keys(fake) == [f"Bearer {OPENAI_KEY}"]
        admin(first).virtual_keys.update(slug=slug, key=ROTATED_KEY)
        rotated_at = time.monotonic()
        while True:
            fake.reset()
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            if upstream_keys(fake) == [f"Bearer {ROTATED_KEY}"]:
                break
            # The documented bound is one refresh interval, plus the time a request takes.
            assert time.monotonic() - rotated_at < REFRESH + 2.0, "rotation never arrived"
            time.sleep(0.05)


def test_a_revoked_key_and_a_deleted_slug_are_refused(
    serve: RunningGateway, fake: FakeUpstream
) -> None:
    slug = create_virtual_key(serve, fake, "short lived", OPENAI_KEY)
    key_id, key = create_api_key(serve)
    client = portkey_ai.Portkey(api_key=key, virtual_key=slug, base_url=serve.base_url)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    admin(serve).virtual_keys.delete(slug=slug)
    refused(404, ask(client, MESSAGES), slug)
    other = create_virtual_key(serve, fake, "still here", OPENAI_KEY)
    admin(serve).api_keys.delete(id=key_id)
    revoked = portkey_ai.Portkey(api_key=key, virtual_key=other, base_url=serve.base_url)
    refused(401, ask(revoked, MESSAGES))
    anonymous = portkey_ai.Portkey(api_key="", virtual_key=other, base_url=serve.base_url)
    refused(401, ask(anonymous, MESSAGES))
    assert len(fake.requests) == 1


def test_a_key_without_config_override_cannot_escape_its_config(
    serve: RunningGateway, fake: FakeUpstream
) -> None:
    guarded = create_virtual_key(serve, fake, "guarded", OPENAI_KEY)
    config = admin(serve).configs.create(
        name="guarded",
        config={
            "virtual_key": guarded,
            "input_guardrails": [
                {"default.contains": {"operator": "none", "words": ["forbidden"]}, "deny": True}
            ],
        },
    )
    _, key = create_api_key(
        serve, defaults={"config_id": str(config.slug), "allow_config_override": False}
    )
    client = portkey_ai.Portkey(api_key=key, base_url=serve.base_url)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    denied = [{"role": "user", "content": "something forbidden"}]
    refused(446, ask(client, denied))
    escapes: list[dict[str, Any]] = [
        {"config": '{"provider": "openai", "api_key": "sk-own"}'},
        {"virtual_key": guarded},
        {"provider": "openai"},
        {"custom_host": "http://127.0.0.2:9"},
    ]
    for escape in escapes:
        escaping = portkey_ai.Portkey(api_key=key, base_url=serve.base_url, **escape)
        refused(
            403,
            ask(escaping, denied),
            "config override",
        )
    refused(
        403,
        ask(client, denied, f"@{guarded}/gpt-4o-mini"),
        "config override",
    )
    assert upstream_keys(fake) == [f"Bearer {OPENAI_KEY}"]


def test_the_openai_and_anthropic_sdks_authenticate_with_a_gateway_key(
    serve: RunningGateway, fake: FakeUpstream
) -> None:
    import anthropic
    import openai

    slug = create_virtual_key(serve, fake, "sdk keys", OPENAI_KEY)
    _, key = create_api_key(serve)
    client = openai.OpenAI(
        base_url=serve.base_url, api_key=key, default_headers={"x-portkey-virtual-key": slug}
    )
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    claude_style = anthropic.Anthropic(
        base_url=serve.root, api_key=key, default_headers={"x-portkey-virtual-key": slug}
    )
    reply = claude_style.messages.create(model="gpt-4o-mini", max_tokens=50, messages=MESSAGES)
    assert reply.content
    assert upstream_keys(fake) == [f"Bearer {OPENAI_KEY}"] * 2
    assert all(key not in str(r.headers) for r in fake.requests)
    wrong = openai.OpenAI(base_url=serve.base_url, api_key="pk-mw-" + "x" * 43, max_retries=0)
    refused(401, lambda: wrong.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))

"""The prompt library end to end, as a user drives it: the official portkey-ai SDK (sync and
async) against a real ``portkey-mw serve`` on SQLite.

An admin makes a partial and a prompt that includes it, bound to a virtual key; a client
with a ``completions.write`` key renders it and completes it (plain and streamed: the fake
upstream sees the rendered messages and the vault's key); a new version is published, the
``production`` label moved, ``pp-x@production`` and ``pp-x@1`` called; the log records
name the prompt and version. Then every bad input the issue lists.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import portkey_ai
import pytest

from tests import planted
from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.fake_upstream import FakeUpstream
from tests.planted import ADMIN_KEY, OPENAI_KEY
from tests.test_observability_api import wait_for_logs


@pytest.fixture
def serve(fake: FakeUpstream, tmp_path: Path) -> Iterator[RunningGateway]:
    store = {"url": f"sqlite:///{tmp_path / 'control.db'}", "refresh_interval": 0.5}
    path = server_file(tmp_path, fake, store=store)
    with standalone_gateway(path, env={"PORTKEY_MW_AUTH": "required"}) as running:
        yield running


def admin(gw: RunningGateway) -> portkey_ai.Portkey:
    return portkey_ai.Portkey(api_key=ADMIN_KEY, base_url=gw.base_url)


def client_key(gw: RunningGateway, scopes: tuple[str, ...] = ("completions.write",)) -> str:
    made = admin(gw).api_keys.create(
        name="app", type="organisation", sub_type="service", scopes=list(scopes)
    )
    return planted.plant(str(made.key))


def virtual_key(gw: RunningGateway, fake: FakeUpstream) -> str:
    made = admin(gw).virtual_keys.create(
        name="openai", provider="openai", key=OPENAI_KEY, custom_host=fake.base_url
    )
    return str(made.slug)


def messages(system: str, user: str) -> str:
    return json.dumps([{"role": "system", "content": system}, {"role": "user", "content": user}])


def library(gw: RunningGateway, fake: FakeUpstream) -> dict[str, str]:
    """A partial, and a prompt bound to a virtual key that includes it."""
    vk = virtual_key(gw, fake)
    partial = admin(gw).prompts.partials.create(name="tone", string="Answer {{tone}}ly.")
    partial_slug = str(partial.slug)
    assert partial_slug.startswith("pp-")
    folder = admin(gw).collections.create(name="support")
    made = admin(gw).prompts.create(
        name="support",
        collection_id=str(folder.id),
        string=messages(f"You help with {{{{product}}}}. {{{{>{partial_slug}}}}}", "{{question}}"),
        model="gpt-4o-mini",
        virtual_key=vk,
        parameters={"temperature": 0.2, "max_tokens": 64},
        version_description="first",
    )
    return {"vk": vk, "partial": partial_slug, "prompt": str(made.slug)}


def upstream_bodies(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r.json() for r in fake.requests]


VARIABLES = {"product": "Widgets", "question": "How do I reset it?", "tone": "polite"}


def test_render_complete_publish_and_labels(serve: RunningGateway, fake: FakeUpstream) -> None:
    made = library(serve, fake)
    pp = made["prompt"]
    client = portkey_ai.Portkey(api_key=client_key(serve), base_url=serve.base_url)

    rendered = client.prompts.render(prompt_id=pp, variables=VARIABLES)
    data = rendered.data
    assert data.model == "gpt-4o-mini" and data.temperature == 0.2 and data.max_tokens == 64
    assert [m.content for m in data.messages] == [
        "You help with Widgets. Answer politely.",
        "How do I reset it?",
    ]
    assert fake.requests == []  # render calls no provider

    reply = client.prompts.completions.create(
        prompt_id=pp, variables={**VARIABLES, "tone": "brief"}
    )
    assert reply.choices[0].message.content
    (sent,) = upstream_bodies(fake)
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.2
    assert sent["messages"][0]["content"] == "You help with Widgets. Answer briefly."
    assert fake.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"

    chunks = list(client.prompts.completions.create(prompt_id=pp, variables=VARIABLES, stream=True))
    assert any(c.choices and c.choices[0].delta.content for c in chunks)

    # A new version is not live until published.
    updated = admin(serve).prompts.update(
        prompt_slug=pp, string=messages("v2 for {{product}}", "{{question}}")
    )
    assert updated.version == 2
    assert render_system(client, pp) == "You help with Widgets. Answer politely."
    admin(serve).prompts.publish(prompt_slug=pp, version=2)
    assert render_system(client, pp) == "v2 for Widgets"
    assert render_system(client, f"{pp}@1") == "You help with Widgets. Answer politely."
    assert render_system(client, f"{pp}@latest") == "v2 for Widgets"

    # production points at version 1, then moves to version 2 without a deploy.
    versions = admin(serve).prompts.versions.list(prompt_slug=pp)
    first = next(v for v in versions.data if v["version"] == 1)
    admin(serve).prompts.versions.update(
        prompt_slug=pp, version_id=first["id"], label_id="production"
    )
    assert render_system(client, f"{pp}@production") == "You help with Widgets. Answer politely."
    client.prompts.completions.create(prompt_id=f"{pp}@production", variables=VARIABLES)
    client.prompts.completions.create(prompt_id=f"{pp}@1", variables=VARIABLES)
    admin(serve).prompts.versions.update(prompt_slug=pp, version_id="2", label_id="production")
    assert render_system(client, f"{pp}@production") == "v2 for Widgets"
    client.prompts.completions.create(prompt_id=f"{pp}@production", variables=VARIABLES)

    records = wait_for_logs(serve, 5, prompt_id=pp)
    assert sorted(r["prompt_version"] for r in records) == [1, 1, 1, 1, 2]
    assert {r["prompt_id"] for r in records} == {pp}
    assert all(r["virtual_key"] == made["vk"] for r in records)


def render_system(client: portkey_ai.Portkey, prompt_id: str) -> str:
    data = client.prompts.render(prompt_id=prompt_id, variables=VARIABLES).data
    return str(data.messages[0].content)


def test_the_async_client(serve: RunningGateway, fake: FakeUpstream) -> None:
    key = client_key(serve)

    async def run() -> None:
        boss = portkey_ai.AsyncPortkey(api_key=ADMIN_KEY, base_url=serve.base_url)
        client = portkey_ai.AsyncPortkey(api_key=key, base_url=serve.base_url)
        try:
            vk = virtual_key(serve, fake)
            folder = await boss.collections.create(name="async")
            made = await boss.prompts.create(
                name="async",
                collection_id=str(folder.id),
                string="Say {{word}}",
                parameters={},
                model="gpt-4o-mini",
                virtual_key=vk,
            )
            pp = str(made.slug)
            rendered = await client.prompts.render(prompt_id=pp, variables={"word": "hi"})
            assert rendered.data.messages[0].content == "Say hi"
            assert rendered.data.messages[0].role == "user"
            reply = await client.prompts.completions.create(prompt_id=pp, variables={"word": "x"})
            assert reply.choices[0].message.content
            stream = await client.prompts.completions.create(
                prompt_id=pp, variables={"word": "y"}, stream=True
            )
            assert [c async for c in stream]
            listed = await boss.prompts.list()
            assert pp in [p["slug"] for p in listed.data]
        finally:
            await boss.close()
            await client.close()

    asyncio.run(run())
    assert [b["messages"][0]["content"] for b in upstream_bodies(fake)] == ["Say x", "Say y"]


def status_of(call: Any) -> tuple[int, str]:
    with pytest.raises(Exception) as caught:
        call()
    return int(getattr(caught.value, "status_code", 0)), str(caught.value)


def test_bad_input(serve: RunningGateway, fake: FakeUpstream) -> None:
    made = library(serve, fake)
    pp, boss = made["prompt"], admin(serve)
    client = portkey_ai.Portkey(api_key=client_key(serve), base_url=serve.base_url)

    status, message = status_of(
        lambda: client.prompts.completions.create(prompt_id=pp, variables={"product": "x"})
    )
    assert status == 400 and "question" in message
    for missing in ("pp-nope", f"{pp}@99", f"{pp}@canary", f"{pp}@staging"):
        status, message = status_of(
            lambda m=missing: client.prompts.render(prompt_id=m, variables=VARIABLES)
        )
        assert status == 404 and missing.split("@")[-1][:6] in message, message
    assert fake.requests == []

    folder = str(boss.collections.create(name="bad").id)
    status, message = status_of(
        lambda: boss.prompts.create(
            name="broken", collection_id=folder, parameters={}, string="Hi {{#open}} never closed"
        )
    )
    assert status == 400 and "line 1" in message and "column" in message, message
    status, message = status_of(
        lambda: boss.prompts.create(
            name="lost", collection_id=folder, parameters={}, string="{{>pp-missing-partial}}"
        )
    )
    assert status == 404 and "pp-missing-partial" in message

    # A partial that includes itself, directly or through another.
    a = str(boss.prompts.partials.create(name="a", string="A").slug)
    b = str(boss.prompts.partials.create(name="b", string=f"B {{{{>{a}}}}}").slug)
    status, message = status_of(
        lambda: boss.prompts.partials.update(partial_slug=a, string=f"{{{{>{a}}}}}")
    )
    assert status == 400 and a in message
    status, message = status_of(
        lambda: boss.prompts.partials.update(partial_slug=a, string=f"{{{{>{b}}}}}")
    )
    assert status == 400 and a in message and b in message

    # A label split whose weights are not positive.
    http = httpx.Client(base_url=serve.base_url, headers={"x-portkey-api-key": ADMIN_KEY})
    for weights in ([0, 100], [-1, 2], [70, "30"]):
        answer = http.put(
            f"/prompts/{pp}/labels/staging",
            json={
                "versions": [
                    {"version": 1, "weight": weights[0]},
                    {"version": 1, "weight": weights[1]},
                ]
            },
        )
        assert answer.status_code == 400, answer.text
    answer = http.put(
        f"/prompts/{pp}/labels/staging", json={"versions": [{"version": 7, "weight": 1}]}
    )
    assert answer.status_code == 404 and "7" in answer.json()["error"]["message"]
    # A variable holding a tag is inserted as it is, never expanded.
    rendered = client.prompts.render(
        prompt_id=pp,
        variables={**VARIABLES, "question": "{{product}} {{>" + made["partial"] + "}}"},
    )
    assert rendered.data.messages[1].content == "{{product}} {{>" + made["partial"] + "}}"
    http.close()


def test_unknown_variables_under_the_strict_setting(fake: FakeUpstream, tmp_path: Path) -> None:
    store = {"url": f"sqlite:///{tmp_path / 'control.db'}"}
    path = server_file(tmp_path, fake, store=store, prompts={"strict_variables": True})
    with standalone_gateway(path, env={"PORTKEY_MW_AUTH": "required"}) as gw:
        made = library(gw, fake)
        client = portkey_ai.Portkey(api_key=client_key(gw), base_url=gw.base_url)
        status, message = status_of(
            lambda: client.prompts.completions.create(
                prompt_id=made["prompt"], variables={**VARIABLES, "colour": "red"}
            )
        )
        assert status == 400 and "colour" in message
        # The partial's own variable (tone) is known; so are the template's.
        reply = client.prompts.completions.create(prompt_id=made["prompt"], variables=VARIABLES)
        assert reply.choices[0].message.content
    assert len(fake.requests) == 1

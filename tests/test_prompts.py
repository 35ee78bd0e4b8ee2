"""The prompt library in process: version selection and A/B splits, variables, routing of a
prompt call, the render shape, workspaces, hostile ids and the admin checks.

The SDK's view end to end against ``portkey-mw serve`` is tests/test_prompts_e2e.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portkey_mw import Gateway
from portkey_mw.prompts.library import PromptCall, callers, render_answer
from portkey_mw.prompts.selection import (
    PromptNotFound,
    check_split,
    choose,
    pick_split,
    split_id,
)
from portkey_mw.store.records import Prompt, PromptVersion
from tests.conftest import in_process
from tests.planted import ADMIN_KEY

ADMIN = {"x-portkey-api-key": ADMIN_KEY}


def prompt(*templates: str, **extra: Any) -> Prompt:
    versions = tuple(
        PromptVersion(id=f"v{n}", prompt_id="p", version=n, template=t)
        for n, t in enumerate(templates, start=1)
    )
    return Prompt(id="p", slug="pp-x", name="x", versions=versions, **extra)


# -- ids and selection ----------------------------------------------------------------------------
def test_prompt_ids() -> None:
    assert split_id("pp-x") == ("pp-x", None)
    assert split_id("pp-x@12") == ("pp-x", "12")
    assert split_id("pp-x@production") == ("pp-x", "production")
    assert PromptCall.of_path("/v1/prompts/pp-x@3/completions") == PromptCall(
        "pp-x@3", "completions"
    )
    assert PromptCall.of_path("/v1/prompts/pp-x/render") == PromptCall("pp-x", "render")
    for not_a_call in (
        "/v1/prompts/pp-x",
        "/v1/prompts/partials/render",
        "/v1/prompts/a/b/completions",
        "/v1/prompts//completions",
        "/v1/prompts/pp-x/versions",
    ):
        assert PromptCall.of_path(not_a_call) is None, not_a_call


def test_choose_by_default_number_latest_and_label() -> None:
    p = prompt(
        "one",
        "two",
        "three",
        default_version=2,
        labels={
            "staging": {"versions": [{"version": 3, "weight": 1}]},
        },
    )
    assert choose(p, None, {}, {}, "r")[0].version == 2
    assert choose(p, "1", {}, {}, "r")[0].version == 1
    assert choose(p, "latest", {}, {}, "r")[0].version == 3
    assert choose(p, "staging", {}, {}, "r") == (p.versions[2], "staging")
    for missing in ("9", "production", "canary", "99999999999999"):
        with pytest.raises(PromptNotFound):
            choose(p, missing, {}, {}, "r")


def test_a_split_is_sticky_and_follows_its_weights() -> None:
    split = [{"version": 1, "weight": 70}, {"version": 2, "weight": 30}]
    users = [f"user-{n}" for n in range(2000)]
    chosen = {u: pick_split(split, prompt_id="p", label="production", caller=u) for u in users}
    share = Counter(chosen.values())[1] / len(users)
    assert abs(share - 0.70) <= 0.03, share
    assert all(
        pick_split(split, prompt_id="p", label="production", caller=u) == v
        for u, v in chosen.items()
    )
    # Another prompt or label places the same users independently.
    other = [pick_split(split, prompt_id="q", label="production", caller=u) for u in users]
    assert other != list(chosen.values())


def test_split_checks() -> None:
    p = prompt("one", "two")
    assert check_split([{"version": 1, "weight": 7}, {"version": 2, "weight": 3}], p)
    for bad in (
        [],
        [{"version": 1, "weight": 0}],
        [{"version": 1, "weight": -2}],
        [{"version": 1, "weight": "3"}],
        [{"version": 1}, {"version": 1}],
        [{"version": 1, "weight": float("inf")}],
        "v1",
        [1],
    ):
        with pytest.raises(Exception) as caught:
            check_split(bad, p)
        assert getattr(caught.value, "status", None) == 400, bad
    with pytest.raises(PromptNotFound):
        check_split([{"version": 3, "weight": 1}], p)


def test_callers() -> None:
    found = callers({"user": "u1"}, {"team": "core", "n": 3, "flag": True}, "t-1")
    assert found == {"user": "u1", "trace": "t-1", "metadata.team": "core", "metadata.n": "3"}
    assert callers({}, {"_user": "u2"}, "t")["user"] == "u2"


# -- through the gateway ------------------------------------------------------------------------
@pytest.fixture
async def gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("PORTKEY_MW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PORTKEY_MW_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.delenv("PORTKEY_MW_REDIS_URL", raising=False)
    settings = tmp_path / "server.yaml"
    settings.write_text(
        json.dumps(
            {
                "mock": True,
                "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"},
                "prompts": {"strict_variables": False},
            }
        )
    )
    async with in_process(Gateway(config_file=settings)) as client:
        yield client


async def create(
    client: httpx.AsyncClient, path: str = "/v1/prompts", **body: Any
) -> dict[str, Any]:
    answer = await client.post(path, json=body, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_a_70_30_split_over_4000_users(gateway: httpx.AsyncClient) -> None:
    # The assignment is a hash of the prompt (a new id each run), the label and the user, so
    # the share varies from run to run: over 4,000 users its standard deviation is 0.7
    # points, and the ±3 bound is 4 of them (1,000 users made it 2, a 4 % flake).
    made = await create(
        gateway, name="ab", string="Version one for {{user_name}}", provider="mock", model="m"
    )
    pp = made["slug"]
    answer = await gateway.put(
        f"/v1/prompts/{pp}", json={"string": "Version two for {{user_name}}"}, headers=ADMIN
    )
    assert answer.status_code == 200 and answer.json()["version"] == 2
    answer = await gateway.put(
        f"/v1/prompts/{pp}/labels/production",
        json={"versions": [{"version": 1, "weight": 70}, {"version": 2, "weight": 30}]},
        headers=ADMIN,
    )
    assert answer.status_code == 200, answer.text
    seen: dict[str, set[int]] = {}
    for n in range(4500):
        user = f"user-{n % 4000}"  # the first 500 users call twice
        answer = await gateway.post(
            f"/v1/prompts/{pp}@production/completions",
            json={"variables": {"user_name": user}, "user": user},
        )
        assert answer.status_code == 200, answer.text
        content = answer.json()["choices"][0]["message"]["content"]
        seen.setdefault(user, set()).add(1 if "one" in content else 2)
    assert all(len(versions) == 1 for versions in seen.values())  # sticky per user
    share = sum(1 for v in seen.values() if v == {1}) / len(seen)
    assert abs(share - 0.70) <= 0.03, share


async def test_variables_defaults_and_overrides(gateway: httpx.AsyncClient) -> None:
    made = await create(
        gateway,
        name="vars",
        string=json.dumps(
            [
                {"role": "system", "content": "Be {{tone}}."},
                {"role": "user", "content": "{{q}}{{#extra}} ({{extra}}){{/extra}}"},
            ]
        ),
        provider="mock",
        model="m",
        parameters={"temperature": 0.3, "max_tokens": 10},
        tool_choice={"type": "function", "function": {"name": "f"}},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        variables={"tone": "kind"},
    )
    pp = made["slug"]
    answer = await gateway.post(
        f"/v1/prompts/{pp}/render", json={"variables": {"q": "hi", "unused": 1}, "temperature": 0.9}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["data"]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"},
    ]
    assert body["data"]["temperature"] == 0.9 and body["data"]["max_tokens"] == 10
    # The SDK's model types tool_choice as a string: the object is in `rendered` only.
    assert "tool_choice" not in body["data"] and "tool_choice" in body["warning"]
    assert body["rendered"]["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["prompt"] == {"id": pp, "version": 1, "label": None}

    answer = await gateway.post(f"/v1/prompts/{pp}/completions", json={"variables": {"tone": "x"}})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "missing_variable" and "'q'" in error["message"]
    answer = await gateway.post(f"/v1/prompts/{pp}/completions", json={"variables": "q"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_variables"
    answer = await gateway.post(
        f"/v1/prompts/{pp}/completions", json={"variables": {"q": "x"}, "messages": []}
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_override"


async def test_hostile_prompt_ids_and_methods(gateway: httpx.AsyncClient) -> None:
    for name in ("pp-" + "x" * 5000, "pp-x%00", "pp-x@", "@@@", "pp-x@latest@1"):
        answer = await gateway.post(f"/v1/prompts/{name}/completions", json={})
        assert answer.status_code in (400, 404), (name, answer.text)
    answer = await gateway.get("/v1/prompts/pp-x/completions")
    assert answer.status_code == 405
    answer = await gateway.post("/v1/prompts/pp-x/render", content=b"[1,2]")
    assert answer.status_code == 400


def test_render_answer_keeps_fields_the_sdk_can_parse() -> None:
    from portkey_mw.prompts.library import RenderedPrompt

    p = prompt("x")
    rendered = RenderedPrompt(
        body={
            "model": "m",
            "messages": [],
            "presence_penalty": 0.2,
            "frequency_penalty": 1,
            "stream": True,
        },
        prompt=p,
        version=p.versions[0],
        label=None,
        binding={},
    )
    answer = json.loads(render_answer(rendered))
    assert answer["data"] == {"model": "m", "messages": [], "frequency_penalty": 1}
    assert answer["rendered"]["presence_penalty"] == 0.2 and "stream" not in answer["rendered"]


class Memory:
    """A prompt source holding records in memory (the catalog's interface)."""

    def __init__(self, *records: Prompt) -> None:
        self.records = {r.slug: r for r in records}
        self.labels: dict[str, Any] = {}

    def saved_prompt(self, name: str) -> Prompt | None:
        return self.records.get(name)

    async def prompt(self, name: str) -> Prompt | None:
        return self.records.get(name)


async def test_strict_variables_know_the_partials_names() -> None:
    from portkey_mw.prompts.library import PromptLibrary

    partial = Prompt(
        id="q",
        slug="pp-tone",
        name="tone",
        kind="partial",
        versions=(PromptVersion(id="t1", prompt_id="q", version=1, template="Be {{tone}}."),),
    )
    main = prompt("{{question}} {{>pp-tone}}")
    strict = PromptLibrary(Memory(main, partial), strict_variables=True)
    lenient = PromptLibrary(Memory(main, partial))
    sent = {"variables": {"question": "Why?", "tone": "brief"}}
    for library in (strict, lenient):
        done = await library.render(
            "pp-x", sent, workspace_id=None, callers={}, fallback_caller="r"
        )
        assert done.body["messages"] == [{"role": "user", "content": "Why? Be brief."}]
    extra = {"variables": {"question": "Why?", "colour": "red"}}
    with pytest.raises(Exception) as caught:
        await strict.render("pp-x", extra, workspace_id=None, callers={}, fallback_caller="r")
    assert getattr(caught.value, "code", None) == "unknown_variable"
    assert "colour" in str(caught.value)
    # Not strict: ignored; a partial's own variable left out renders empty.
    done = await lenient.render("pp-x", extra, workspace_id=None, callers={}, fallback_caller="r")
    assert done.body["messages"][0]["content"] == "Why? Be ."
    # Another workspace's prompt is not found.
    with pytest.raises(PromptNotFound):
        await lenient.render("pp-x", sent, workspace_id="w2", callers={}, fallback_caller="r")


async def test_what_cannot_be_deleted_or_renamed(gateway: httpx.AsyncClient) -> None:
    partial = await create(gateway, "/v1/prompts/partials", name="tone", string="Be {{tone}}.")
    made = await create(
        gateway, name="uses", string="Hi {{> " + partial["slug"] + " }}", provider="mock", model="m"
    )
    answer = await gateway.delete(f"/v1/prompts/partials/{partial['slug']}", headers=ADMIN)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "partial_in_use"
    assert made["slug"] in answer.json()["error"]["message"]

    label = await create(gateway, "/v1/labels", name="canary")
    answer = await gateway.put(
        f"/v1/prompts/{made['slug']}/versions/1", json={"label_id": label["id"]}, headers=ADMIN
    )
    assert answer.status_code == 200, answer.text
    answer = await gateway.delete(f"/v1/labels/{label['id']}", headers=ADMIN)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "label_in_use"
    answer = await gateway.post(
        f"/v1/prompts/{made['slug']}@canary/render", json={"variables": {"tone": "calm"}}
    )
    assert answer.json()["data"]["messages"][0]["content"] == "Hi Be calm."
    for built_in in ("production", "staging"):
        answer = await gateway.delete(f"/v1/labels/{built_in}", headers=ADMIN)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "built_in_label"
    answer = await gateway.post("/v1/labels", json={"name": "Production"}, headers=ADMIN)
    assert answer.status_code == 409

    # A label pointing at a version that includes the partial keeps it in use too.
    answer = await gateway.put(f"/v1/prompts/{made['slug']}", json={"string": "Hi"}, headers=ADMIN)
    assert answer.status_code == 200
    answer = await gateway.put(
        f"/v1/prompts/{made['slug']}/makeDefault", json={"version": 2}, headers=ADMIN
    )
    assert answer.status_code == 200
    answer = await gateway.delete(f"/v1/prompts/partials/{partial['slug']}", headers=ADMIN)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "partial_in_use"
    # Once no live version includes it, the partial can go; the label once moved off.
    answer = await gateway.delete(f"/v1/prompts/{made['slug']}/labels/canary", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    answer = await gateway.delete(f"/v1/prompts/partials/{partial['slug']}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    answer = await gateway.delete(f"/v1/labels/{label['id']}", headers=ADMIN)
    assert answer.status_code == 200, answer.text

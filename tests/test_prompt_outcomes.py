"""Each prompt version's outcomes (``GET /v1/analytics/groups/prompt-versions``): the
requests of a 70/30 split counted per version, the label a call came through, feedback on
a trace scored on its version, workspaces, and the 404s and 400s.

The dashboard's view of the same is in tests/test_dashboard_browser.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portkey_mw import Gateway
from portkey_mw.logstore.query import LogFilter
from tests import planted
from tests.test_control_plane_attacks import ADMIN, gateway_in_process, made, sqlite_url

DEADLINE = 10.0
ROUTE = "/v1/analytics/groups/prompt-versions"


def window(**extra: Any) -> dict[str, Any]:
    now = time.time()
    return {"time_of_generation_min": now - 3600, "time_of_generation_max": now + 60, **extra}


async def stored(gateway: Gateway, count: int) -> None:
    """Wait until the log store holds ``count`` records (the sink writes in batches)."""
    await gateway.settled()
    queries = gateway.log_queries
    assert queries is not None
    end = time.monotonic() + DEADLINE
    while (await queries.search(LogFilter(), page_size=1))[1] < count:
        assert time.monotonic() < end, f"fewer than {count} records stored"
        await asyncio.sleep(0.05)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    async with gateway_in_process(sqlite_url(tmp_path), prompts={"strict_variables": False}) as (
        gateway,
        client,
    ):
        yield gateway, client


async def two_versions(client: httpx.AsyncClient, headers: Any = ADMIN, name: str = "ab") -> str:
    """A prompt whose version 1 says "one" and version 2 "two", production split 70/30."""
    body = {"name": name, "string": "Version one for {{u}}", "provider": "mock", "model": "m"}
    slug = str((await made(client, "/v1/prompts", body, headers))["slug"])
    reply = await client.put(
        f"/v1/prompts/{slug}", json={"string": "Version two for {{u}}"}, headers=headers
    )
    assert reply.status_code == 200 and reply.json()["version"] == 2, reply.text
    split = {"versions": [{"version": 1, "weight": 70}, {"version": 2, "weight": 30}]}
    reply = await client.put(f"/v1/prompts/{slug}/labels/production", json=split, headers=headers)
    assert reply.status_code == 200, reply.text
    return slug


async def call(client: httpx.AsyncClient, name: str, user: str, headers: Any = None) -> int:
    """Call the prompt as ``user`` (trace ``t-<user>``); the version that answered."""
    reply = await client.post(
        f"/v1/prompts/{name}/completions",
        json={"variables": {"u": user}, "user": user},
        headers={"x-portkey-trace-id": f"t-{user}", **(headers or {})},
    )
    assert reply.status_code == 200, reply.text
    return 1 if "one" in reply.json()["choices"][0]["message"]["content"] else 2


def by_version(answer: httpx.Response) -> dict[int, dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return {row["version"]: row for row in answer.json()["data"]}


async def test_each_version_counts_its_traffic_its_label_and_its_feedback(
    running: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gateway, client = running
    slug = await two_versions(client)
    answered = {f"u{n}": await call(client, f"{slug}@production", f"u{n}") for n in range(40)}
    split = Counter(answered.values())
    assert split[1] and split[2], split  # both sides of the split ran
    for n in range(3):  # the version by number: no label
        assert await call(client, f"{slug}@1", f"direct{n}") == 1
    await stored(gateway, 43)
    one = next(u for u, v in answered.items() if v == 1)
    twos = [u for u, v in answered.items() if v == 2][:2]
    for user, value in ((one, 5), (twos[0], -3), (twos[1], 1)):
        feedback = {"trace_id": f"t-{user}", "value": value}
        assert (await client.post("/v1/feedback", json=feedback, headers=ADMIN)).is_success

    answer = await client.get(ROUTE, params=window(prompt_slug=slug), headers=ADMIN)
    rows = by_version(answer)
    assert [row["version"] for row in answer.json()["data"]] == [2, 1]  # newest first
    assert answer.json()["prompt"]["slug"] == slug and answer.json()["requests"] == 43
    assert rows[1]["requests"] == split[1] + 3 and rows[2]["requests"] == split[2]
    assert rows[1]["errors"] == rows[2]["errors"] == 0
    assert rows[1]["latency_p50_ms"] is not None and rows[1]["total_tokens"] > 0
    assert rows[1]["is_default"] and not rows[2]["is_default"]
    assert [(lb["label_id"], lb["share"]) for lb in rows[1]["labels"]] == [("production", 70.0)]
    assert [(lb["label_id"], lb["share"]) for lb in rows[2]["labels"]] == [("production", 30.0)]
    assert (rows[1]["feedback_count"], rows[1]["feedback_avg"]) == (1, 5.0)
    assert (rows[2]["feedback_count"], rows[2]["feedback_avg"]) == (2, -1.0)
    assert rows[1]["version_id"] and rows[1]["version_id"] != rows[2]["version_id"]

    # Through the label only: the calls by number drop out, and their feedback would too.
    through = by_version(
        await client.get(
            ROUTE, params=window(prompt_slug=slug, prompt_label="production"), headers=ADMIN
        )
    )
    assert (through[1]["requests"], through[2]["requests"]) == (split[1], split[2])
    assert through[1]["share"] + through[2]["share"] == pytest.approx(100.0)
    # The prompt's id names it as well as its slug.
    prompt_id = (await client.get(f"/v1/prompts/{slug}", headers=ADMIN)).json()["id"]
    again = by_version(await client.get(ROUTE, params=window(prompt_slug=prompt_id), headers=ADMIN))
    assert again[1]["requests"] == rows[1]["requests"]
    # The log query endpoint groups by version and filters by label too.
    stats = await client.get(
        "/v1/logs/stats", params={"prompt_id": slug, "group_by": "prompt_version"}, headers=ADMIN
    )
    assert {g["key"]: g["requests"] for g in stats.json()["groups"]} == {
        1: split[1] + 3,
        2: split[2],
    }
    listed = await client.get("/v1/logs", params={"prompt_label": "production"}, headers=ADMIN)
    assert listed.json()["total"] == 40
    record = (await client.get(f"/v1/logs/{listed.json()['data'][0]['id']}", headers=ADMIN)).json()
    assert record["prompt_label"] == "production" and record["prompt_id"] == slug


async def test_a_version_without_traffic_is_listed_with_zeros(
    running: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = running
    slug = await two_versions(client)
    rows = by_version(await client.get(ROUTE, params=window(prompt_slug=slug), headers=ADMIN))
    assert set(rows) == {1, 2}
    assert rows[2]["requests"] == 0 and rows[2]["share"] == 0.0
    assert rows[2]["feedback_count"] == 0 and rows[2]["feedback_avg"] is None


async def test_unknown_prompts_are_404_and_bad_queries_400(
    running: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = running
    slug = await two_versions(client)
    partial = await made(client, "/v1/prompts/partials", {"name": "p", "string": "hi"})
    for name in ("pp-nothing", partial["slug"], "x" * 400):
        answer = await client.get(ROUTE, params=window(prompt_slug=name), headers=ADMIN)
        assert answer.status_code == 404, (name, answer.text)
        assert answer.json()["error"]["code"] == "prompt_not_found"
    for params in (
        window(),  # no prompt
        window(prompt_slug=f"{slug},pp-other"),  # two
        {"prompt_slug": slug},  # no time range
        window(prompt_slug=slug, page_size="0"),
        window(prompt_slug=slug, nonsense="1"),
    ):
        answer = await client.get(ROUTE, params=params, headers=ADMIN)
        assert answer.status_code == 400, (params, answer.text)
    assert (await client.get(ROUTE, params=window(prompt_slug=slug))).status_code == 401


async def test_a_workspace_key_sees_only_its_workspace_prompts_and_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTKEY_MW_AUTH", "required")
    async with gateway_in_process(sqlite_url(tmp_path)) as (gateway, client):
        scopes = ["completions.write", "analytics.view", "prompts.create", "prompts.update"]
        scopes += ["prompts.read", "prompts.publish"]
        mine = await made(
            client,
            "/v1/api-keys/workspace/service",
            {"name": "w1", "scopes": scopes, "workspace_id": "ws-1"},
        )
        me = {"x-portkey-api-key": planted.plant(mine["key"])}
        own = await two_versions(client, me, name="mine")
        theirs = await two_versions(client, name="theirs")  # the organisation's
        org = await made(
            client,
            "/v1/api-keys/organisation/service",
            {"name": "o", "scopes": ["completions.write"]},
        )
        other = {"x-portkey-api-key": planted.plant(org["key"])}
        for n in range(4):
            await call(client, own, f"m{n}", me)
        await call(client, own, "o0", other)  # the organisation's call of the same prompt
        await call(client, theirs, "o1", other)
        await stored(gateway, 6)

        seen = by_version(await client.get(ROUTE, params=window(prompt_slug=own), headers=me))
        assert sum(row["requests"] for row in seen.values()) == 4  # its own keys' calls
        everyone = by_version(
            await client.get(ROUTE, params=window(prompt_slug=own), headers=ADMIN)
        )
        assert sum(row["requests"] for row in everyone.values()) == 5
        answer = await client.get(ROUTE, params=window(prompt_slug=theirs), headers=me)
        assert answer.status_code == 404, answer.text
        # the answer of a prompt that does not exist: nothing says it does elsewhere
        assert answer.json()["error"]["message"] == f"no prompt {theirs!r}"
        no_scope = await made(
            client,
            "/v1/api-keys/workspace/service",
            {"name": "w2", "scopes": ["prompts.read"], "workspace_id": "ws-1"},
        )
        refused = await client.get(
            ROUTE,
            params=window(prompt_slug=own),
            headers={"x-portkey-api-key": planted.plant(no_scope["key"])},
        )
        assert refused.status_code == 403

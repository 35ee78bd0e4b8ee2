"""Issue 13's surface attacked: the SQL log store, the log, feedback, export and analytics
routes, as a client with no key, a low-scope key or another workspace's key would.

Each test is a finding of the red team (a 500, a wedged sink, a leak across workspaces,
unbounded work) kept as a regression test; ``store_url`` runs the store-facing ones on
SQLite and on PostgreSQL, which refuses what SQLite takes (NUL in text, 32-bit overflow).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from portkey_mw import Gateway
from portkey_mw.logstore.query import LogFilter, LogQueries
from tests import planted
from tests.secret_scan import SCANNER
from tests.test_control_plane_attacks import (
    ADMIN,
    MOCK_CHAT,
    gateway_in_process,
    made,
    new_key,
    sqlite_url,
)

DEADLINE = 10.0
MOCK = {"x-portkey-provider": "mock"}


def queries_of(gateway: Gateway) -> LogQueries:
    found = gateway.log_queries
    assert found is not None
    return found


async def stored(gateway: Gateway, count: int, f: LogFilter | None = None) -> list[dict[str, Any]]:
    """Poll the store until ``count`` records match (the sink writes in batches); a sink
    that is stuck fails here, at the deadline, instead of hanging a flush."""
    await gateway.settled()
    end = time.monotonic() + DEADLINE
    while True:
        rows, total = await queries_of(gateway).search(f or LogFilter(), page_size=200)
        if total >= count:
            return rows
        sinks = {s.sink: s for s in gateway.logs.stats()}
        assert time.monotonic() < end, f"{total} of {count} records stored; {sinks}"
        await asyncio.sleep(0.05)


def window(**extra: Any) -> dict[str, Any]:
    now = time.time()
    return {"time_of_generation_min": now - 3600, "time_of_generation_max": now + 60, **extra}


# -- the SQL sink ------------------------------------------------------------------------------


async def test_a_nul_in_metadata_or_a_body_never_wedges_the_sql_sink(store_url: str) -> None:
    """PostgreSQL refuses NUL in text: one request's ``\\u0000`` in x-portkey-metadata (or a
    kept body holding a NUL byte) failed its batch for ever, and the sink held -- then
    dropped -- every record after it."""
    async with gateway_in_process(store_url, logging={"bodies": True}) as (gateway, client):
        poison = {**MOCK, "x-portkey-metadata": '{"team": "x\\u0000y", "k\\u0000": "v"}'}
        first = await client.post("/v1/chat/completions", json=MOCK_CHAT, headers=poison)
        assert first.status_code == 200
        binary = await client.post(
            "/v1/chat/completions", content=b'{"model": "m", "x": \x00\x01}', headers=MOCK
        )
        assert binary.status_code == 400
        after = await client.post(
            "/v1/chat/completions",
            json=MOCK_CHAT,
            headers={**MOCK, "x-portkey-metadata": '{"team": "ok"}'},
        )
        assert after.status_code == 200
        # (the store may be shared with other tests: look the three up by their ids)
        await gateway.settled()
        ids = [reply.headers["x-portkey-request-id"] for reply in (first, binary, after)]
        end = time.monotonic() + DEADLINE
        while True:
            records = [await queries_of(gateway).get(request_id) for request_id in ids]
            if all(records) or time.monotonic() > end:
                break
            await asyncio.sleep(0.05)
        assert [r and r["status"] for r in records] == [200, 400, 200], gateway.logs.stats()
        tagged, total = await queries_of(gateway).search(LogFilter(metadata={"team": "xy"}))
        assert total == 1 and tagged[0]["id"] == first.headers["x-portkey-request-id"]
        (sink,) = [s for s in gateway.logs.stats() if s.sink == "sql-logs"]
        assert sink.dropped == 0


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("/v1/logs?q=%00", "q"),
        ("/v1/logs?trace_id=a%00", "trace_id"),
        ("/v1/logs?metadata.team=%00", "metadata.team"),
        ("/v1/logs?metadata.t%00=x", "metadata.t\x00"),
        ("/v1/logs/stats?group_by=metadata.%00", "group_by"),
        ("/v1/logs/stats?metadata.team=a%00b", "metadata.team"),
        ("/v1/analytics/graphs/requests?metadata=%7B%22a%22%3A%22%5Cu0000%22%7D", "metadata"),
        ("/v1/analytics/groups/ai-models?metadata=%7B%22%5Cu0000%22%3A%22a%22%7D", "metadata"),
    ],
)
async def test_a_nul_in_a_log_query_is_a_400_naming_it(
    store_url: str, query: str, param: str
) -> None:
    """PostgreSQL refuses NUL in a text parameter: these were 500s there."""
    async with gateway_in_process(store_url) as (_, client):
        if "analytics" in query:
            w = window()
            query += f"&time_of_generation_min={w['time_of_generation_min']}"
            query += f"&time_of_generation_max={w['time_of_generation_max']}"
        reply = await client.get(query, headers=ADMIN)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


async def test_numbers_out_of_a_columns_range_are_no_500(store_url: str) -> None:
    """Token bounds past 32 bits, and a custom log whose response_time puts its start before
    any BIGINT, failed as bound parameters."""
    async with gateway_in_process(store_url) as (gateway, client):
        for name, value in (("total_units_min", "1e300"), ("prompt_token_max", "1e19")):
            reply = await client.get(
                "/v1/analytics/graphs/tokens", params=window(**{name: value}), headers=ADMIN
            )
            assert reply.status_code == 200, (name, reply.text)
        custom = {"response": {"status": 200, "response_time": 1e300}}
        reply = await client.post("/v1/logs", json=custom, headers=ADMIN)
        assert reply.status_code == 200, reply.text
        (row,) = await stored(gateway, 1)
        assert abs(row["created_ms"] / 1000 - time.time()) < 60
        export = {"filters": {"total_units_max": 1e300}}
        made_export = await made(client, "/v1/logs/exports", export)
        started = await client.post(f"/v1/logs/exports/{made_export['id']}/start", headers=ADMIN)
        assert started.status_code == 200
        end = time.monotonic() + DEADLINE
        while (
            status := (await client.get(f"/v1/logs/exports/{made_export['id']}", headers=ADMIN))
            .json()
            .get("status")
        ) == "in_progress":
            assert time.monotonic() < end
            await asyncio.sleep(0.05)
        assert status == "success"


async def test_an_exports_workspace_id_must_be_a_string(tmp_path: Path) -> None:
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        for workspace in ({"a": 1}, 5, ["w"], "w" * 129):
            reply = await client.post(
                "/v1/logs/exports", json={"workspace_id": workspace}, headers=ADMIN
            )
            assert reply.status_code == 400, (workspace, reply.text)
            assert reply.json()["error"]["param"] == "workspace_id"


# -- unbounded work ----------------------------------------------------------------------------


@pytest.mark.parametrize("graph", ["users", "users/requests", "errors/stacks"])
async def test_graphs_that_query_per_bucket_refuse_a_thousand_buckets(
    tmp_path: Path, graph: str
) -> None:
    """These graphs run queries for every bucket: 900 of them (interval=4 over an hour)
    took one call 10 to 20 seconds of database time on an empty store."""
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        path = f"/v1/analytics/graphs/{graph}"
        started = time.monotonic()
        reply = await client.get(path, params=window(interval=4), headers=ADMIN)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["param"] == "interval"
        assert time.monotonic() - started < 2.0
        assert (await client.get(path, params=window(), headers=ADMIN)).status_code == 200


# -- workspaces --------------------------------------------------------------------------------


async def test_a_workspace_key_sees_no_other_keys_records_or_feedback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workspace key saw (1) the logs of an organisation key that merely carried its
    workspace_id, (2) every workspace's feedback in the feedback graphs, (3) another
    trace's feedback through a custom log copying its trace id, and (4) every record in
    an export of its workspace that the admin started."""
    monkeypatch.setenv("PORTKEY_MW_AUTH", "required")
    async with gateway_in_process(sqlite_url(tmp_path)) as (gateway, client):
        scopes = ["completions.write", "logs.list", "logs.view", "analytics.view"]
        scopes += ["logs.export", "feedback.write", "logs.write"]
        body = {"name": "w1", "scopes": scopes, "workspace_id": "ws-1"}
        mine = await made(client, "/v1/api-keys/workspace/service", body)
        planted.plant(mine["key"])
        tagged = await new_key(client, ["completions.write"], workspace_id="ws-1")
        other = await new_key(client, ["completions.write"])
        for key, trace in ((mine, "t-mine"), (tagged, "t-tagged"), (other, "t-other")):
            headers = {**MOCK, "x-portkey-api-key": key["key"], "x-portkey-trace-id": trace}
            reply = await client.post("/v1/chat/completions", json=MOCK_CHAT, headers=headers)
            assert reply.status_code == 200, reply.text
        await stored(gateway, 3)
        for trace, value in (("t-mine", 3), ("t-other", -9)):
            feedback = {"trace_id": trace, "value": value, "metadata": {"of": trace}}
            assert (await client.post("/v1/feedback", json=feedback, headers=ADMIN)).is_success
        me = {"x-portkey-api-key": mine["key"]}

        listed = (await client.get("/v1/logs", headers=me)).json()
        assert [r["trace_id"] for r in listed["data"]] == ["t-mine"]

        scores = await client.get(
            "/v1/analytics/graphs/feedbacks/scores", params=window(), headers=me
        )
        assert scores.json()["summary"]["scores"] == {"3": 1}, scores.text

        copy = {"metadata": {"trace_id": "t-other"}, "response": {"status": 200}}
        (copied,) = (await client.post("/v1/logs", json=copy, headers=me)).json()["log_ids"]
        assert (await client.get(f"/v1/logs/{copied}", headers=me)).json()["feedback"] == []
        own = (await client.get("/v1/logs", headers=me, params={"trace_id": "t-mine"})).json()
        detail = (await client.get(f"/v1/logs/{own['data'][0]['id']}", headers=me)).json()
        assert [f["value"] for f in detail["feedback"]] == [3]

        export = (await client.post("/v1/logs/exports", json={}, headers=me)).json()
        started = await client.post(f"/v1/logs/exports/{export['id']}/start", headers=ADMIN)
        assert started.status_code == 200
        end = time.monotonic() + DEADLINE
        while (await client.get(f"/v1/logs/exports/{export['id']}", headers=me)).json()[
            "status"
        ] != "success":
            assert time.monotonic() < end
            await asyncio.sleep(0.05)
        link = await client.get(f"/v1/logs/exports/{export['id']}/download", headers=me)
        url = httpx.URL(link.json()["signed_url"])
        lines = (await client.get(url.path, params=url.params)).text.splitlines()
        assert sorted(json.loads(line)["trace_id"] for line in lines) == ["t-mine", "t-other"]
        # (the second is the custom log this key made itself, copying a trace id)
        assert all(json.loads(line)["trace_id"] != "t-tagged" for line in lines)


# -- secrets -----------------------------------------------------------------------------------


async def test_custom_log_headers_never_reach_the_store_and_the_scan_reads_the_store(
    tmp_path: Path,
) -> None:
    async with gateway_in_process(sqlite_url(tmp_path)) as (gateway, client):
        custom = {
            "request": {
                "url": "https://api.openai.com/v1/chat/completions",
                "headers": {
                    "authorization": f"Bearer {planted.OPENAI_KEY}",
                    "x-portkey-api-key": planted.ADMIN_KEY,
                },
                "body": {"model": "gpt-4o"},
            },
            "response": {"status": 200, "headers": {"x-api-key": planted.ANTHROPIC_KEY}},
        }
        assert (await client.post("/v1/logs", json=custom, headers=ADMIN)).is_success
        engine = queries_of(gateway).engine
        async with engine.connect() as connection:
            raw = (await connection.execute(text("SELECT record FROM request_logs"))).scalars()
            kept = "\n".join(raw)
        assert "gpt-4o" in kept
        for secret in (planted.OPENAI_KEY, planted.ADMIN_KEY, planted.ANTHROPIC_KEY):
            assert secret not in kept
        # The suite's scanner reads what the store is handed (a leak there fails a test).
        await queries_of(gateway).insert(
            [{"request_id": "leak", "error_message": planted.AZURE_KEY}]
        )
        assert SCANNER.take() == ["stored log record: " + planted.AZURE_KEY[:12] + "..."]


async def test_an_export_file_needs_a_live_token_for_that_export(tmp_path: Path) -> None:
    """(Held.) The file route takes no API key: no token, another export's token, a token
    past its expiry, or a path below the export id open nothing."""
    async with gateway_in_process(sqlite_url(tmp_path)) as (gateway, client):
        ids = [(await made(client, "/v1/logs/exports", {}))["id"] for _ in range(2)]
        for export_id in ids:
            assert (
                await client.post(f"/v1/logs/exports/{export_id}/start", headers=ADMIN)
            ).is_success
        end = time.monotonic() + DEADLINE
        for export_id in ids:
            while (await client.get(f"/v1/logs/exports/{export_id}", headers=ADMIN)).json()[
                "status"
            ] != "success":
                assert time.monotonic() < end
                await asyncio.sleep(0.05)
        link = await client.get(f"/v1/logs/exports/{ids[0]}/download", headers=ADMIN)
        url = httpx.URL(link.json()["signed_url"])
        token = url.params["token"]
        assert (await client.get(url.path, params={"token": token})).status_code == 200
        other = f"/v1/logs/exports/{ids[1]}/file"
        for path, params in (
            (url.path, {}),
            (url.path, {"token": ""}),
            (url.path, {"token": token[:-1]}),
            (other, {"token": token}),
            (f"/v1/logs/exports/{ids[0]}/../{ids[1]}/file", {"token": token}),
        ):
            reply = await client.get(path, params=params)
            assert reply.status_code in (401, 404), (path, reply.text)
        services = gateway.__dict__["_log_route_services"]
        services.links[token] = (ids[0], time.monotonic() - 1)  # expired
        expired = await client.get(url.path, params={"token": token})
        assert expired.status_code == 401 and token not in services.links

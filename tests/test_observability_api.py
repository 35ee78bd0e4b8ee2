"""Portkey's feedback, logs, exports and analytics APIs, and portkey-mw's own log query
endpoint, through the official portkey-ai SDK (sync and async) against a gateway served
over HTTP, with real traffic through a fake upstream stored by the SQL log store.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import portkey_ai
import pytest
from click.testing import CliRunner
from portkey_ai import AsyncPortkey
from portkey_ai.api_resources import exceptions as errors

from portkey_mw.cli import main
from tests import planted
from tests.conftest import RunningGateway, ThreadedServer, server_file
from tests.fake_upstream import FakeUpstream
from tests.planted import ADMIN_KEY, OPENAI_KEY

MESSAGES = [{"role": "user", "content": "hello there"}]
DEADLINE = 10.0
GRAPHS = (
    "requests", "cost", "latency", "tokens", "users", "users_requests", "errors",
    "errors_rate", "errors_stacks", "errors_status_codes", "requests_rescued",
    "cache_hit_rate", "cache_latency", "feedbacks", "feedbacks_scores", "feedbacks_weighted",
    "feedbacks_ai_models",
)  # fmt: skip


@pytest.fixture
def gw(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningGateway]:
    from portkey_mw import Gateway

    monkeypatch.setenv("PORTKEY_MW_AUTH", "required")
    monkeypatch.delenv("PORTKEY_MW_REDIS_URL", raising=False)
    monkeypatch.setenv("PORTKEY_MW_DATA_DIR", str(tmp_path))
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    gateway = Gateway(config_file=server_file(tmp_path, fake, store=store))
    assert gateway.log_queries is not None  # logging.store: sql, the default
    with ThreadedServer(gateway) as server:
        yield RunningGateway("mounted", server.url, server.url, app=gateway)


def admin(gw: RunningGateway) -> portkey_ai.Portkey:
    return portkey_ai.Portkey(api_key=ADMIN_KEY, base_url=gw.base_url)


def http(gw: RunningGateway, key: str | None = ADMIN_KEY) -> httpx.Client:
    headers = {"x-portkey-api-key": key} if key else {}
    return httpx.Client(base_url=gw.base_url, headers=headers, timeout=10)


def api_key(gw: RunningGateway, scopes: list[str]) -> str:
    made = admin(gw).api_keys.create(
        name="app", type="organisation", sub_type="service", scopes=scopes
    )
    return planted.plant(str(made.key))


def traffic(gw: RunningGateway, fake: FakeUpstream) -> dict[str, Any]:
    """Three chat requests: two by user u1 (one traced t-1), one by u2; all stored."""
    slug = str(
        admin(gw)
        .virtual_keys.create(
            name="openai", provider="openai", key=OPENAI_KEY, custom_host=fake.base_url
        )
        .slug
    )
    key = api_key(gw, ["completions.write"])
    tokens = 0
    for trace, user in (("t-1", "u1"), ("t-2", "u1"), ("t-3", "u2")):
        client = portkey_ai.Portkey(
            api_key=key,
            virtual_key=slug,
            base_url=gw.base_url,
            trace_id=trace,
            metadata={"_user": user, "team": "core"},
        )
        done = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        tokens += done.usage.total_tokens
    wait_for_logs(gw, 3)
    return {"slug": slug, "tokens": tokens}


def wait_for_logs(gw: RunningGateway, count: int, **params: str) -> list[dict[str, Any]]:
    """Poll the query endpoint until ``count`` records match (the sink writes in batches)."""
    if gw.app is not None:
        gw.settle()
    end = time.monotonic() + DEADLINE
    with http(gw) as client:
        while True:
            answer = client.get("/logs", params=params)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            if body["total"] >= count:
                return list(body["data"])
            assert time.monotonic() < end, f"only {body['total']} of {count} logs arrived"
            time.sleep(0.05)


def window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "time_of_generation_min": (now - timedelta(hours=1)).isoformat(),
        "time_of_generation_max": (now + timedelta(minutes=5)).isoformat(),
    }


# -- feedback ------------------------------------------------------------------------------------


def test_feedback_create_bulk_update_and_its_errors(gw: RunningGateway, fake: FakeUpstream) -> None:
    traffic(gw, fake)
    sdk = admin(gw)
    one = sdk.feedback.create(trace_id="t-1", value=5, weight=0.5, metadata={"why": "good"})
    assert one.status == "success" and len(one.feedback_ids) == 1
    many = sdk.feedback.bulk_create(
        feedbacks=[{"trace_id": "t-2", "value": -3}, {"trace_id": "t-1", "value": 10}]
    )
    assert len(many.feedback_ids) == 2 and len(set(many.feedback_ids)) == 2
    updated = sdk.feedback.update(feedback_id=one.feedback_ids[0], value=7, weight=1.0)
    assert updated.feedback_ids == [one.feedback_ids[0]]
    with pytest.raises(errors.BadRequestError) as bad:
        sdk.feedback.create(trace_id="t-1", value=11)
    assert bad.value.response.json()["error"]["param"] == "value"
    with pytest.raises(errors.BadRequestError):
        sdk.feedback.create(trace_id="t-1", value=1, weight=2.0)
    with pytest.raises(errors.NotFoundError, match="t-nope"):
        sdk.feedback.create(trace_id="t-nope", value=1)
    with pytest.raises(errors.NotFoundError):
        sdk.feedback.update(feedback_id="no-such", value=1)
    # the record carries its trace's feedback
    record = wait_for_logs(gw, 1, trace_id="t-1")[0]
    with http(gw) as client:
        full = client.get(f"/logs/{record['id']}").json()
    assert full["object"] == "log" and full["trace_id"] == "t-1"
    assert sorted(f["value"] for f in full["feedback"]) == [7, 10]


# -- logs.create ---------------------------------------------------------------------------------


def test_logs_create_one_and_many_async(gw: RunningGateway) -> None:
    async def go() -> tuple[Any, Any]:
        sdk = AsyncPortkey(api_key=ADMIN_KEY, base_url=gw.base_url)
        one = await sdk.logs.create(
            request={
                "url": "https://api.openai.com/v1/chat/completions",
                "method": "POST",
                "body": {"model": "gpt-4o", "messages": MESSAGES},
            },
            response={
                "status": 200,
                "body": {
                    "model": "gpt-4o",
                    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
                },
                "response_time": 123,
            },
            metadata={"trace_id": "custom-1", "span_name": "llm", "team": "ext"},
        )
        await sdk.close()
        return one, None

    one, _ = asyncio.run(go())
    body = one.json()
    assert body["status"] == "success" and len(body["log_ids"]) == 1
    with http(gw) as client:
        many = client.post(
            "/logs", json=[{"request": {"url": "/v1/embeddings"}}, {"response": {"status": 500}}]
        )
        assert many.status_code == 200 and len(many.json()["log_ids"]) == 2
        bad = client.post("/logs", json={"response": {"status": "x"}})
        assert bad.status_code == 400
    stored = wait_for_logs(gw, 1, trace_id="custom-1")
    assert stored[0]["model"] == "gpt-4o" and stored[0]["total_tokens"] == 7
    with http(gw) as client:
        full = client.get(f"/logs/{body['log_ids'][0]}").json()
    assert full["custom"] is True and full["latency_ms"] == 123
    assert full["span_name"] == "llm" and full["metadata"] == {"team": "ext"}


# -- exports -------------------------------------------------------------------------------------


def test_export_create_start_poll_download(gw: RunningGateway, fake: FakeUpstream) -> None:
    traffic(gw, fake)
    sdk = admin(gw)
    made = sdk.logs.exports.create(
        filters={**window(), "metadata": {"_user": "u1"}},
        workspace_id=None,
        description="u1's requests",
        requested_data=["id", "trace_id", "ai_model", "total_units", "metadata"],
    )
    assert made.id and made.object == "export"
    listed = sdk.logs.exports.list()
    assert made.id in [e["id"] for e in listed.data]
    assert sdk.logs.exports.retrieve(export_id=made.id).status == "draft"
    started = sdk.logs.exports.start(export_id=made.id)
    assert started.message
    end = time.monotonic() + DEADLINE
    while (got := sdk.logs.exports.retrieve(export_id=made.id)).status != "success":
        assert got.status == "in_progress" and time.monotonic() < end, got.status
        time.sleep(0.05)
    assert got.total_records == 2
    link = sdk.logs.exports.download(export_id=made.id).signed_url
    assert link and "token=" in link
    fetched = httpx.get(link, timeout=10)  # no API key: the link is the credential
    assert fetched.status_code == 200
    lines = [json.loads(x) for x in fetched.text.splitlines()]
    assert sorted(x["trace_id"] for x in lines) == ["t-1", "t-2"]
    assert set(lines[0]) == {"id", "trace_id", "ai_model", "total_units", "metadata"}
    # a wrong token, or none, opens nothing
    assert httpx.get(link.split("token=")[0] + "token=nope", timeout=10).status_code == 401
    assert httpx.get(link.split("?")[0], timeout=10).status_code == 401
    # a started export no longer changes; an unknown filter is refused
    with pytest.raises(errors.BadRequestError):
        sdk.logs.exports.update(export_id=made.id, filters={})
    with pytest.raises(errors.BadRequestError, match="nonsense"):
        sdk.logs.exports.create(filters={"nonsense": 1}, requested_data=["id"])
    draft = sdk.logs.exports.create(filters={}, requested_data=["id"])
    assert sdk.logs.exports.cancel(export_id=draft.id).message
    assert sdk.logs.exports.retrieve(export_id=draft.id).status == "stopped"


# -- analytics -----------------------------------------------------------------------------------


def test_every_graph_parses_and_counts_the_traffic(gw: RunningGateway, fake: FakeUpstream) -> None:
    sent = traffic(gw, fake)
    sdk = admin(gw)
    sdk.feedback.create(trace_id="t-1", value=4)
    sdk.feedback.create(trace_id="t-3", value=-2, weight=0.5)
    for name in GRAPHS:
        graph = getattr(sdk.analytics.graphs, name)(**window())
        assert graph.object == "analytics-graph", name
        assert isinstance(graph.data, list), name
        assert graph.data or name == "errors_status_codes", name  # one point per code
        assert all("timestamp" in point for point in graph.data), name
    graphs = sdk.analytics.graphs
    requests = graphs.requests(**window())
    assert requests.summary["total"] == 3
    assert sum(p["total"] for p in requests.data_points) == 3
    assert graphs.tokens(**window()).summary["total"] == sent["tokens"]
    assert graphs.users(**window()).summary["total"] == 2
    assert graphs.errors(**window()).summary["total"] == 0
    assert graphs.feedbacks(**window()).summary["total"] == 2
    assert graphs.feedbacks_scores(**window()).summary["avg"] == 1.0
    assert graphs.feedbacks_weighted(**window()).summary["weighted_avg"] == pytest.approx(2.0)
    only_u2 = graphs.requests(**window(), metadata=json.dumps({"_user": "u2"}))
    assert only_u2.summary["total"] == 1
    assert graphs.requests(**window(), status_code="500").summary["total"] == 0


def test_groups_and_the_cache_summary_async(gw: RunningGateway, fake: FakeUpstream) -> None:
    traffic(gw, fake)

    async def go() -> tuple[Any, Any, Any, Any]:
        sdk = AsyncPortkey(api_key=ADMIN_KEY, base_url=gw.base_url)
        try:
            models = await sdk.analytics.groups.ai_models(**window())
            users = await sdk.analytics.groups.users(**window())
            team = await sdk.analytics.groups.metadata(metadata_key="_user", **window())
            cache = await sdk.analytics.summary.cache(**window())
            return models, users, team, cache
        finally:
            await sdk.close()

    models, users, team, cache = asyncio.run(go())
    assert models.total == 1 and models.data[0]["ai_model"] == "gpt-4o-mini"
    assert models.data[0]["requests"] == 3
    assert {u["user"]: u["requests"] for u in users.data} == {"u1": 2, "u2": 1}
    assert {t["metadata_value"]: t["requests"] for t in team.data} == {"u1": 2, "u2": 1}
    assert cache.object and cache.data["requests"] == 3
    sdk = admin(gw)
    paged = sdk.analytics.groups.users(**window(), page_size=1, current_page=1)
    assert paged.total == 2 and len(paged.data) == 1
    with pytest.raises(errors.BadRequestError, match="group"):
        sdk.analytics.groups.group_by(group_by="nonsense", **window())


def test_bad_analytics_input_is_400_naming_the_parameter(gw: RunningGateway) -> None:
    with http(gw) as client:
        for path, params, param in [
            ("/analytics/graphs/requests", {}, "time_of_generation_min"),
            (
                "/analytics/graphs/requests",
                {**window(), "time_of_generation_max": "soon"},
                "time_of_generation_max",
            ),
            ("/analytics/graphs/cost", {**window(), "metadata": "[1]"}, "metadata"),
            ("/analytics/graphs/cost", {**window(), "bogus": "1"}, "bogus"),
            ("/analytics/groups/ai-models", {**window(), "page_size": "500"}, "page_size"),
            ("/analytics/groups/ai-models", {**window(), "order_by": "x"}, "order_by"),
        ]:
            answer = client.get(path, params=params)
            assert answer.status_code == 400, (path, answer.text)
            assert answer.json()["error"]["param"] == param


# -- our query endpoint --------------------------------------------------------------------------


def test_the_query_endpoint_filters_and_refuses_bad_params(
    gw: RunningGateway, fake: FakeUpstream
) -> None:
    traffic(gw, fake)
    with http(gw) as client:

        def total(**params: str) -> int:
            answer = client.get("/logs", params=params)
            assert answer.status_code == 200, answer.text
            return int(answer.json()["total"])

        assert total() == 3
        assert total(provider="openai", model="gpt-4o-mini") == 3
        assert total(**{"metadata._user": "u1"}) == 2
        assert total(status="200,500") == 3 and total(status="500") == 0
        assert total(trace_id="t-3") == 1
        page = client.get("/logs", params={"page_size": "2"}).json()
        assert page["object"] == "list" and len(page["data"]) == 2 and page["page_size"] == 2
        stats = client.get(
            "/logs/stats", params={"group_by": "metadata._user", "interval": "3600"}
        ).json()
        assert "error" not in stats, stats
        assert stats["object"] == "log-stats" and stats["totals"]["requests"] == 3
        assert {g["key"]: g["requests"] for g in stats["groups"]} == {"u1": 2, "u2": 1}
        assert sum(s["requests"] for s in stats["series"]) == 3
        for params, param in [
            ({"page_size": "201"}, "page_size"),
            ({"from": "yesterday"}, "from"),
            ({"status": "abc"}, "status"),
            ({"colour": "red"}, "colour"),
        ]:
            answer = client.get("/logs", params=params)
            assert answer.status_code == 400 and answer.json()["error"]["param"] == param
        bad_group = client.get("/logs/stats", params={"group_by": "colour"})
        assert bad_group.status_code == 400 and bad_group.json()["error"]["param"] == "group_by"
        missing = client.get("/logs/0123456789abcdef")
        assert missing.status_code == 404 and "0123456789abcdef" in missing.text
        # exports.list is not a log id, and logs.create is not logs.list
        assert client.get("/logs/exports").json()["object"] == "list"


def test_scopes_guard_every_route(gw: RunningGateway, fake: FakeUpstream) -> None:
    traffic(gw, fake)
    viewer = api_key(gw, ["logs.view", "logs.list"])
    with http(gw, viewer) as client:
        assert client.get("/logs").status_code == 200
        denied = client.get("/analytics/graphs/requests", params=window())
        assert denied.status_code == 403 and "analytics.view" in denied.text
        assert client.post("/feedback", json={"trace_id": "t-1", "value": 1}).status_code == 403
        assert client.post("/logs/exports", json={}).status_code == 403
    with http(gw, None) as client:
        assert client.get("/logs").status_code == 401
        assert client.get("/analytics/graphs/requests", params=window()).status_code == 401
    with pytest.raises(errors.PermissionDeniedError):
        portkey_ai.Portkey(api_key=viewer, base_url=gw.base_url).analytics.graphs.cost(**window())


# -- the CLI -------------------------------------------------------------------------------------


def test_the_logs_commands(gw: RunningGateway, fake: FakeUpstream) -> None:
    traffic(gw, fake)
    target = ["--url", gw.root, "--admin-key", ADMIN_KEY]
    runner = CliRunner()
    tail = runner.invoke(main, ["logs", "tail", "-n", "2", *target])
    assert tail.exit_code == 0, tail.output
    assert len(tail.output.strip().splitlines()) == 2 and "openai/gpt-4o-mini" in tail.output
    follow = runner.invoke(
        main, ["logs", "tail", "--json", "-f", "--interval", "0.01", "--polls", "2", *target]
    )
    assert follow.exit_code == 0, follow.output
    assert len([json.loads(x) for x in follow.output.strip().splitlines()]) == 3
    search = runner.invoke(
        main, ["logs", "search", "--metadata", "_user=u1", "--since", "1h", "--json", *target]
    )
    assert search.exit_code == 0, search.output
    assert json.loads(search.output)["total"] == 2
    table = runner.invoke(main, ["logs", "search", "--provider", "openai", *target])
    assert table.exit_code == 0 and "3 of 3 records" in table.output
    stats = runner.invoke(main, ["logs", "stats", "--group-by", "model", *target])
    assert stats.exit_code == 0, stats.output
    assert "gpt-4o-mini" in stats.output and "p99" in stats.output
    bad = runner.invoke(main, ["logs", "stats", "--group-by", "colour", *target])
    assert bad.exit_code != 0 and "group_by" in bad.output


def test_with_the_log_store_off_the_routes_say_so(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portkey_mw import Gateway

    monkeypatch.setenv("PORTKEY_MW_AUTH", "required")
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    path = server_file(tmp_path, fake, store=store, logging={"store": "off"})
    gateway = Gateway(config_file=path)
    with (
        ThreadedServer(gateway) as server,
        http(RunningGateway("mounted", server.url, server.url, app=gateway)) as client,
    ):
        for method, route in [("GET", "/logs"), ("POST", "/feedback"), ("GET", "/logs/exports")]:
            answer = client.request(method, route, json={} if method == "POST" else None)
            assert answer.status_code == 503, answer.text
            assert "logging.store" in answer.json()["error"]["message"]

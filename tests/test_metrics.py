"""``GET /metrics`` after real traffic, parsed with prometheus-client's own parser: requests
by status, latency and time-to-first-token histograms, tokens and cost (checked against
genai-prices), cache lookups, retries and fallbacks, spend control's refusals, guardrail
verdicts, circuit states and the log queue; the admin key required; client-chosen model
names bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import genai_prices
import httpx
import pytest
from genai_prices.types import Usage
from prometheus_client.parser import text_string_to_metric_families

from portkey_mw import Gateway
from portkey_mw.metrics import GatewayMetrics
from tests.conftest import in_process, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN_KEY, OPENAI_KEY

ADMIN = {"x-portkey-api-key": ADMIN_KEY}
MESSAGES = [{"role": "user", "content": "hello there"}]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_after_traffic(tmp_path: Path, fake: FakeUpstream) -> None:
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    gw = Gateway(config_file=server_file(tmp_path, fake, store=store))
    reply = {
        "id": "chatcmpl-m",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 100,
            "total_tokens": 1100,
            "prompt_tokens_details": {"cached_tokens": 600},
        },
    }
    fake.script("/v1/chat/completions", Reply(json=reply), Reply(status=500), Reply(json=reply))
    async with in_process(gw) as client:

        async def chat(headers: dict[str, str], **body: Any) -> httpx.Response:
            return await client.post(
                "/v1/chat/completions",
                headers=headers,
                json={"model": "gpt-4o", "messages": MESSAGES, **body},
            )

        made = await client.post(
            "/v1/virtual-keys",
            headers=ADMIN,
            json={
                "name": "m",
                "provider": "openai",
                "key": OPENAI_KEY,
                "custom_host": fake.base_url,
                "rate_limits": [{"unit": "rph", "value": 3}],
            },
        )
        slug = made.json()["slug"]
        vk = {"x-portkey-virtual-key": slug}
        assert (await chat(vk)).status_code == 200  # priced, with cache reads
        # A 500, retried once by the config: the retry answers.
        retried = {"virtual_key": slug, "retry": {"attempts": 1, "on_status_codes": [500]}}
        answer = await chat({"x-portkey-config": json.dumps(retried)})
        assert answer.status_code == 200
        stream = await chat(vk, stream=True)
        assert stream.status_code == 200
        assert (await chat(vk)).status_code == 429  # the virtual key's 3 per hour are spent
        # a fallback from a spent key to the mock provider
        fallback = {
            "strategy": {"mode": "fallback"},
            "targets": [{"virtual_key": slug}, {"provider": "mock"}],
        }
        assert (await chat({"x-portkey-config": json.dumps(fallback)})).status_code == 200
        await gw.settled()
        await gw.logs.flush()
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        scraped = await client.get("/metrics", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(scraped.text)
    chat_ = "chat_completions"
    openai_200 = value(
        found,
        "portkey_mw_requests_total",
        endpoint=chat_,
        provider="openai",
        model="gpt-4o",
        status="200",
    )
    assert openai_200 == 3
    assert (
        value(
            found,
            "portkey_mw_requests_total",
            endpoint=chat_,
            provider="openai",
            model="gpt-4o",
            status="429",
        )
        == 1
    )
    assert value(found, "portkey_mw_limit_refusals_total", kind="rate_limit") == 1
    assert value(found, "portkey_mw_retries_total", provider="openai") == 1
    assert value(found, "portkey_mw_fallbacks_total", endpoint=chat_) == 1
    assert (
        value(
            found,
            "portkey_mw_errors_total",
            endpoint=chat_,
            provider="openai",
            error_type="requests",
        )
        == 1
    )
    # tokens: two scripted answers of 1000 in (600 cached) / 100 out, plus the stream's
    assert (
        value(
            found, "portkey_mw_tokens_total", provider="openai", model="gpt-4o", kind="cache_read"
        )
        == 1200
    )
    assert (
        value(found, "portkey_mw_tokens_total", provider="openai", model="gpt-4o", kind="output")
        >= 200
    )
    one = genai_prices.calc_price(
        Usage(input_tokens=1000, cache_read_tokens=600, output_tokens=100),
        model_ref="gpt-4o-2024-08-06",
        provider_id="openai",
    ).total_price
    tokens = {
        kind: value(found, "portkey_mw_tokens_total", provider="openai", model="gpt-4o", kind=kind)
        for kind in ("input", "output")
    }
    streamed = genai_prices.calc_price(  # the stream's own usage, from the fake upstream
        Usage(input_tokens=int(tokens["input"]) - 2000, output_tokens=int(tokens["output"]) - 200),
        model_ref="gpt-4o",
        provider_id="openai",
    ).total_price
    cost = value(found, "portkey_mw_cost_usd_total", provider="openai", model="gpt-4o")
    assert cost == pytest.approx(float(2 * one + streamed), rel=1e-9)
    assert (
        value(found, "portkey_mw_request_duration_seconds_count", endpoint=chat_, provider="openai")
        == 4
    )
    assert value(found, "portkey_mw_time_to_first_token_seconds_count", provider="openai") == 1
    assert ("portkey_mw_log_queue_depth", (("sink", "metrics"),)) in found
    assert value(found, "portkey_mw_log_records_dropped_total", sink="metrics") == 0
    assert value(found, "portkey_mw_log_sink_failures_total", sink="structlog") == 0
    assert value(found, "portkey_mw_limits_degraded", backend="memory") == 0
    assert value(found, "portkey_mw_cache_lookups_total", status="HIT") == 0


def test_client_chosen_model_names_are_bounded() -> None:
    from portkey_mw.logevents import LogEvent

    metrics = GatewayMetrics()
    metrics.model.limit = 3
    for i in range(50):
        metrics.observe(
            LogEvent(
                trace_id=str(i),
                started_at=0.0,
                endpoint="chat_completions",
                method="POST",
                path="/v1/chat/completions",
                status=200,
                latency_ms=1.0,
                provider="mock",
                model=f"random-{i}",
            )
        )
    found = samples(metrics.render().decode())
    models = {
        dict(labels).get("model") for name, labels in found if name == "portkey_mw_requests_total"
    }
    assert models == {"random-0", "random-1", "random-2", "other"}


def test_workers_add_up_in_every_scrape(tmp_path: Path, fake: FakeUpstream) -> None:
    """``serve --workers 2``: whichever worker answers a scrape, it counts every worker's
    requests (prometheus-client's multiprocess mode, in a directory serve makes)."""
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import DEADLINE, free_port, wait_until_healthy

    path = server_file(tmp_path, fake, store={"enabled": False})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portkey_mw",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--config",
            str(path),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base + "/health")
        body = {"model": "mock-gpt", "messages": MESSAGES}
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(40):
                # a new connection each time, so that both workers serve some
                answer = client.post(
                    "/v1/chat/completions",
                    json=body,
                    headers={"x-portkey-provider": "mock", "connection": "close"},
                )
                assert answer.status_code == 200
            deadline, agreed = time.monotonic() + DEADLINE, 0
            while True:
                scraped = client.get(
                    "/metrics",
                    headers={"authorization": f"Bearer {ADMIN_KEY}", "connection": "close"},
                )
                assert scraped.status_code == 200
                total = sum(
                    sample.value
                    for family in text_string_to_metric_families(scraped.text)
                    for sample in family.samples
                    if sample.name == "portkey_mw_requests_total"
                )
                # Without the shared directory each worker counts only the requests it
                # served (about half), so several scrapes in a row would not all say 40.
                agreed = agreed + 1 if total == 40 else 0
                if agreed == 5:
                    break
                assert time.monotonic() < deadline, f"scrapes count {total} of 40 requests"
    finally:
        proc.terminate()
        proc.wait(DEADLINE)
        log.close()

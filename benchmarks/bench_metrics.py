"""What ``/metrics`` costs: updating the series per request (in the log dispatcher's task,
not the request's) and rendering a scrape, at a few sizes of label sets.

    python benchmarks/bench_metrics.py [--events 20000] [--models 10 100 500]
"""

from __future__ import annotations

import argparse
import statistics
import time

from portkey_mw.logevents import LogEvent
from portkey_mw.metrics import GatewayMetrics

USAGE = (
    b'{"model": "m", "usage": {"prompt_tokens": 120, "completion_tokens": 40,'
    b' "total_tokens": 160, "prompt_tokens_details": {"cached_tokens": 64}}}'
)


def events(count: int, models: int) -> list[LogEvent]:
    made = []
    for i in range(count):
        event = LogEvent(
            trace_id=str(i),
            started_at=0.0,
            endpoint="chat_completions",
            method="POST",
            path="/v1/chat/completions",
            status=200 if i % 20 else 500,
            latency_ms=5.0 + i % 300,
            provider=("openai", "anthropic", "groq")[i % 3],
            model=f"model-{i % models}",
            ttfb_ms=2.0 if i % 2 else None,
        )
        event.response_bytes = USAGE
        made.append(event)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--models", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    print(f"{args.events} log events per case; µs per event, ms per scrape (median)")
    print(
        f"  {'distinct models':>16} {'series':>8} {'observe µs':>11} {'scrape ms':>10} {'bytes':>9}"
    )
    for models in args.models:
        metrics = GatewayMetrics()
        batch = events(args.events, models)
        began = time.perf_counter()
        for event in batch:
            metrics.observe(event)
        per_event = (time.perf_counter() - began) / len(batch) * 1e6
        times = []
        for _ in range(args.scrapes):
            began = time.perf_counter()
            body = metrics.render()
            times.append((time.perf_counter() - began) * 1000)
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        print(
            f"  {models:>16} {series:>8} {per_event:>11.1f} {statistics.median(times):>10.2f}"
            f" {len(body):>9}"
        )


if __name__ == "__main__":
    main()

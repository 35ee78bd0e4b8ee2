"""What calling a stored prompt adds to a request, beside a plain chat completion.

One run, one process, one gateway (the SQLite store in a temporary directory, the
in-process ``mock`` provider answering at once), requests driven straight through its ASGI
interface so that the gateway's own work is what is measured, the cases interleaved:

1. a plain chat completion (the baseline): an API key and ``x-portkey-virtual-key``, two
   messages already written out;
2. the same request as a prompt call: ``POST /v1/prompts/{id}/completions`` with three
   variables, a two-message template that includes one partial, bound to the same
   virtual key;
3. the same with a ``user`` in the body (what the split below sticks by);
4. the prompt through a label split 70/30 between two versions (sticky by ``user``);
5. ``POST /v1/prompts/{id}/render`` (no provider, no log record);

and the render alone (``PromptLibrary.render``: find, choose, parse-once, render), without
the HTTP path. Each line: mean µs per request (median of batches) and what it adds to the
baseline; and how many SQL statements the store ran meanwhile -- none for a request: the
few counted are the catalog's refresh poll (one revision read per ``store.refresh_interval``).

    python benchmarks/bench_prompts.py [--requests 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from _harness import ADMIN_KEY, admin, batches, call, store_bench

from portkey_mw.prompts.library import callers

SYSTEM = "You help customers of Widgets with their orders. Answer politely."
QUESTION = "Where is my order 1234?"
PLAIN = orjson.dumps(
    {
        "model": "mock-gpt",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        "temperature": 0.2,
    }
)
VARIABLES = {"product": "Widgets", "question": QUESTION, "tone": "polite"}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # No SQL log store: its writer would fall behind a loop this tight and drop records,
        # the cost differing from case to case; every case writes the same record anyway.
        bench = await store_bench(Path(tmp), logging={"store": "off"})
        gateway, vk, key = bench.gateway, {"slug": bench.virtual_key}, bench.api_key
        partial = await admin(
            gateway, "/v1/prompts/partials", {"name": "tone", "string": "Answer {{tone}}ly."}
        )
        template = orjson.dumps(
            [
                {
                    "role": "system",
                    "content": "You help customers of {{product}} with their orders. "
                    "{{>" + partial["slug"] + "}}",
                },
                {"role": "user", "content": "{{question}}"},
            ]
        ).decode()
        made = await admin(
            gateway,
            "/v1/prompts",
            {
                "name": "bench",
                "string": template,
                "model": "mock-gpt",
                "virtual_key": vk["slug"],
                "parameters": {"temperature": 0.2},
            },
        )
        pp = made["slug"]
        headers = {"x-portkey-api-key": key}
        status, _ = await call(
            gateway, "PUT", f"/v1/prompts/{pp}", {"x-portkey-api-key": ADMIN_KEY},
            orjson.dumps({"string": template + " "}),
        )  # fmt: skip
        assert status == 200
        split = {"versions": [{"version": 1, "weight": 70}, {"version": 2, "weight": 30}]}
        status, reply = await call(
            gateway, "PUT", f"/v1/prompts/{pp}/labels/production",
            {"x-portkey-api-key": ADMIN_KEY}, orjson.dumps(split),
        )  # fmt: skip
        assert status == 200, reply

        def request(
            path: str, headers: dict[str, str], body: bytes | Callable[[int], bytes]
        ) -> Callable[[int], Awaitable[None]]:
            async def run(i: int) -> None:
                sent = body(i) if callable(body) else body
                status, reply = await call(gateway, "POST", path, headers, sent)
                assert status == 200, reply

            return run

        prompt_body = orjson.dumps({"variables": VARIABLES})
        library = gateway.pipeline.prompts
        render_body = {"variables": VARIABLES}

        async def render_alone(i: int) -> None:
            await library.render(
                pp, render_body, workspace_id=None, callers=callers(render_body, {}, "t"),
                fallback_caller="r",
            )  # fmt: skip

        cases: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
            (
                "plain chat completion (baseline)",
                request(
                    "/v1/chat/completions", {**headers, "x-portkey-virtual-key": vk["slug"]}, PLAIN
                ),
            ),
            ("prompt completion", request(f"/v1/prompts/{pp}/completions", headers, prompt_body)),
            (
                "prompt completion with a user",
                request(
                    f"/v1/prompts/{pp}/completions",
                    headers,
                    lambda i: orjson.dumps({"variables": VARIABLES, "user": f"user-{i % 1000}"}),
                ),
            ),
            (
                "prompt completion via a 70/30 split",
                request(
                    f"/v1/prompts/{pp}@production/completions",
                    headers,
                    lambda i: orjson.dumps({"variables": VARIABLES, "user": f"user-{i % 1000}"}),
                ),
            ),
            (
                "prompt render (no provider)",
                request(f"/v1/prompts/{pp}/render", headers, prompt_body),
            ),
            ("PromptLibrary.render alone", render_alone),
        ]
        print(
            f"{args.requests} requests per case and round, {args.rounds} rounds interleaved, "
            "in process, mock provider, SQLite store"
        )
        # The heap holds the gateway's start-up data (the embedding model's, the verifiers'
        # lexicon): kept out of the collector's sweeps, so that a full collection landing in
        # one case's batches does not decide the comparison.
        gc.collect()
        gc.freeze()
        results: dict[str, list[float]] = {title: [] for title, _ in cases}
        queries: dict[str, int] = dict.fromkeys(results, 0)
        for _ in range(args.rounds):
            for title, run in cases:
                before = bench.statements
                gc.collect()
                results[title].append(await batches(run, args.requests))
                await gateway.settled()
                queries[title] += bench.statements - before
        await gateway.shutdown()
    base = statistics.median(results[cases[0][0]])
    for title, values in results.items():
        mean = statistics.median(values)
        print(
            f"{title:40s} {mean:8.1f} µs/request  {mean - base:+8.1f} µs vs baseline "
            f"({mean / base:5.2f}x)  SQL statements: {queries[title]}"
        )
    for name, full, half in hostile_parse_times():
        print(
            f"parse of a 256 KiB template, {name:32s} {full:7.1f} ms "
            f"(half the size: {half:6.1f} ms, ratio {full / half:4.2f})"
        )


def hostile_parse_times() -> list[tuple[str, float, float]]:
    """Milliseconds to parse (or refuse) the largest hostile templates the store accepts
    (``MAX_TEMPLATE_BYTES`` each; pystache's parser takes 31 s on 40 KB of the first), and
    the same at half the size: linear parsing doubles, quadratic quadruples."""
    from portkey_mw.prompts import MAX_TEMPLATE_BYTES, TemplateError
    from portkey_mw.prompts.template import parse_template

    def sources(size: int) -> dict[str, str]:
        return {
            "'{{' repeated": "{{" * (size // 2),
            "an unclosed section at the end": " " * (size - 8) + "{{#a}}",
            "'{{' inside a comment": "{{!" + "{{" * (size // 2 - 4) + "}}",
            "'{{a}}' repeated": "{{a}}" * (size // 5),
        }

    def timed(source: str) -> float:
        started = time.perf_counter()
        with contextlib.suppress(TemplateError):
            parse_template(source)
        return (time.perf_counter() - started) * 1000

    full, half = sources(MAX_TEMPLATE_BYTES), sources(MAX_TEMPLATE_BYTES // 2)
    return [(name, timed(full[name]), timed(half[name])) for name in full]


if __name__ == "__main__":
    asyncio.run(main())

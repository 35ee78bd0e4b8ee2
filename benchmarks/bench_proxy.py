"""Gateway overhead: the same load sent straight to a fast upstream and through the gateway.

Starts, each in its own process on loopback:

* a fast OpenAI-compatible upstream (aiohttp's low-level server, a fixed chat completion
  and a fixed 8-chunk stream);
* ``portkey-mw serve`` (one worker) in front of it, routed with ``x-portkey-provider:
  openai`` + ``x-portkey-custom-host``;
* a load generator (aiohttp client, fixed concurrency, fixed duration).

and prints requests/s and p50/p99 latency for "direct" and "gateway", with the ratios,
measured in the same run, and each gateway's CPU time per request (read from ``/proc``,
so Linux only; steadier than throughput on a machine the load generator shares). Nothing
is asserted: the numbers depend on the machine.

``--compare DIR`` adds a second gateway run from another checkout of portkey-mw (say a
``git worktree`` of an earlier commit), measured in the same run, so a change's cost is a
ratio between two gateways on the same machine at the same moment.

    python benchmarks/bench_proxy.py [--duration 10] [--concurrency 32] [--stream]
                                     [--compare ../portkey-mw-before]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from multiprocessing import Process, Queue
from pathlib import Path
from typing import Any

import orjson
from _checkout import checkout_environment

CHAT_BODY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)
STREAM_BODY = (
    b"".join(
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "bench",
                "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}],
            }
        )
        + b"\n\n"
        for i in range(8)
    )
    + b"data: [DONE]\n\n"
)


def _anthropic_event(kind: str, **data: object) -> bytes:
    return f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


#: The same 8-piece answer as STREAM_BODY, in Anthropic's event format.
ANTHROPIC_STREAM = b"".join(
    [
        _anthropic_event(
            "message_start",
            message={
                "id": "msg_bench",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "bench",
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        ),
        _anthropic_event(
            "content_block_start", index=0, content_block={"type": "text", "text": ""}
        ),
        *(
            _anthropic_event(
                "content_block_delta", index=0, delta={"type": "text_delta", "text": f"w{i} "}
            )
            for i in range(8)
        ),
        _anthropic_event("content_block_stop", index=0),
        _anthropic_event(
            "message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 8}
        ),
        _anthropic_event("message_stop"),
    ]
)
ANTHROPIC_MESSAGE = orjson.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [{"type": "text", "text": "pong"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
)
FAILURE_BODY = orjson.dumps(
    {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}
)
REQUEST = orjson.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 4}
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the upstream ----------------------------------------------------------------------------


def run_upstream(port: int) -> None:
    from aiohttp import web

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        if request.path.startswith("/fail/"):  # a provider that is down (for fallbacks)
            return web.Response(status=503, body=FAILURE_BODY, content_type="application/json")
        if request.path.endswith("/messages"):  # Anthropic's Messages API
            if b'"stream":true' in body.replace(b" ", b""):
                return web.Response(body=ANTHROPIC_STREAM, content_type="text/event-stream")
            return web.Response(body=ANTHROPIC_MESSAGE, content_type="application/json")
        if b'"stream":true' in body.replace(b" ", b""):
            return web.Response(body=STREAM_BODY, content_type="text/event-stream")
        return web.Response(body=CHAT_BODY, content_type="application/json")

    async def main() -> None:
        server = web.Server(handle, access_log=None)
        runner = web.ServerRunner(server)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the load generator ----------------------------------------------------------------------


def run_load(
    url: str, headers: dict[str, str], body: bytes, duration: float, concurrency: int, out: Queue
) -> None:
    import aiohttp

    async def main() -> dict[str, Any]:
        latencies: list[float] = []
        errors = 0
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            # Warm the connection pool and the server before the clock starts.
            for _ in range(concurrency):
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
            stop = time.perf_counter() + duration

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                    latencies.append(time.perf_counter() - started)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - began
        return {"latencies": latencies, "errors": errors, "elapsed": elapsed}

    out.put(asyncio.run(main()))


def measure(
    url: str, headers: dict[str, str], body: bytes, duration: float, concurrency: int
) -> dict[str, float]:
    results: Queue = Queue()
    load = Process(target=run_load, args=(url, headers, body, duration, concurrency, results))
    load.start()
    result = results.get(timeout=duration + 60)
    load.join()
    latencies = sorted(result["latencies"])
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": result["errors"],
        "rps": len(latencies) / result["elapsed"],
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
    }


def wait_for_port(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listening on port {port} after {deadline}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stream", action="store_true", help="streamed chat completions")
    parser.add_argument(
        "--compare", metavar="DIR", help="another checkout to measure beside this one"
    )
    args = parser.parse_args()

    body = REQUEST
    if args.stream:
        body = orjson.dumps({**orjson.loads(REQUEST), "stream": True})

    upstream_port, gateway_port = free_port(), free_port()
    upstream = Process(target=run_upstream, args=(upstream_port,), daemon=True)
    upstream.start()
    gateways = {"gateway": start_gateway(gateway_port, None)}
    compare_port = free_port()
    if args.compare:
        gateways["compared"] = start_gateway(compare_port, args.compare)
    rows: dict[str, dict[str, Any]] = {}
    try:
        wait_for_port(upstream_port)
        wait_for_port(gateway_port)
        if args.compare:
            wait_for_port(compare_port)
        upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
        rows["direct"] = measure(
            f"{upstream_url}/chat/completions",
            {"content-type": "application/json", "authorization": "Bearer sk-bench"},
            body,
            args.duration,
            args.concurrency,
        )
        routed = {
            "content-type": "application/json",
            "authorization": "Bearer sk-bench",
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": upstream_url,
        }
        ports = {"gateway": gateway_port, "compared": compare_port}
        for name in gateways:
            before = cpu_seconds(gateways[name].pid)
            rows[name] = measure(
                f"http://127.0.0.1:{ports[name]}/v1/chat/completions",
                routed,
                body,
                args.duration,
                args.concurrency,
            )
            used = cpu_seconds(gateways[name].pid) - before
            rows[name]["cpu_us"] = used / max(rows[name]["requests"], 1) * 1e6
    finally:
        for process in gateways.values():
            process.terminate()
            process.wait(20)
        upstream.terminate()
    direct, through = rows["direct"], rows["gateway"]

    kind = "streamed (8 chunks)" if args.stream else "non-streamed"
    print(
        f"chat completions, {kind}; concurrency {args.concurrency}, {args.duration:g} s each; "
        f"{os.cpu_count()} CPUs shared by load generator, gateway and upstream"
    )
    print(
        f"{'':10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'errors':>8}"
        f"{'CPU us/req':>12}"
    )
    for name, row in rows.items():
        cpu = f"{row['cpu_us']:>12.0f}" if "cpu_us" in row else f"{'-':>12}"
        print(
            f"{name:10}{row['rps']:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['requests']:>10.0f}{row['errors']:>8.0f}{cpu}"
        )
    print(
        f"gateway/direct: throughput x{through['rps'] / direct['rps']:.2f}, "
        f"p50 +{through['p50_ms'] - direct['p50_ms']:.2f} ms, "
        f"p99 +{through['p99_ms'] - direct['p99_ms']:.2f} ms"
    )
    if "compared" in rows:
        other = rows["compared"]
        print(
            f"gateway/compared ({args.compare}): throughput x{through['rps'] / other['rps']:.2f}, "
            f"p50 {through['p50_ms'] - other['p50_ms']:+.2f} ms, "
            f"p99 {through['p99_ms'] - other['p99_ms']:+.2f} ms, "
            f"CPU per request x{through['cpu_us'] / other['cpu_us']:.2f}"
        )


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux ``/proc``), a steadier measure
    of a gateway's own cost than throughput on a machine the load generator shares."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_gateway(port: int, checkout: str | None) -> subprocess.Popen[bytes]:
    """``portkey-mw serve`` on ``port``: this checkout's, or the one at ``checkout``."""
    env = {
        **os.environ,
        "PORTKEY_MW_BLOCK_PLUGINS": os.environ.get(
            "PORTKEY_MW_BLOCK_PLUGINS", "portkey-mw-example-plugin"
        ),
    }
    cwd: Path | None = None
    if checkout is not None:
        extra, cwd = checkout_environment(checkout)
        env.update(extra)
    return subprocess.Popen(
        [sys.executable, "-m", "portkey_mw", "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    main()

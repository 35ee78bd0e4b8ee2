"""What hostile requests cost the gateway's memory: big and many distinct inline configs.

Starts ``portkey-mw serve`` (and, with ``--compare DIR``, a second gateway from another
checkout, e.g. a ``git worktree`` of an earlier commit) and measures each process's
resident memory (``/proc/<pid>/status``) before and after:

* ``--big`` distinct inline configs of 4 MB each (the issue's attack: 100 of them took the
  process from 74 MiB to 1.26 GiB before headers and configs were bounded);
* ``--many`` distinct inline configs just under ``server.max_config_bytes`` (16 KiB), which
  the compiled-config cache must hold within its byte bound.

Then a request, to show the gateway still answers. Prints the figures; nothing is
asserted. Linux only (it reads /proc).

    python benchmarks/bench_bounds.py [--big 100] [--many 2000] [--compare ../before]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from _checkout import checkout_environment

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(port: int, checkout: str | None, config: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    cwd: Path | None = None
    if checkout is not None:
        extra, cwd = checkout_environment(checkout)
        env.update(extra)
    command = [sys.executable, "-m", "portkey_mw", "serve", "--port", str(port)]
    return subprocess.Popen(
        [*command, "--config", str(config)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_healthy(url: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def send_configs(base: str, count: int, size: int, label: str) -> dict[int, int]:
    """Send ``count`` distinct inline configs of about ``size`` bytes; statuses seen."""
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=60) as client:
        for index in range(count):
            config = {
                "provider": "openai",
                "custom_host": "http://127.0.0.1:9/v1",
                "override_params": {"pad": f"{label}{index}-" + "p" * size},
            }
            try:
                reply = client.post(
                    f"{base}/v1/chat/completions",
                    json=CHAT,
                    headers={"x-portkey-config": orjson.dumps(config).decode()},
                )
                statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
            except httpx.HTTPError:
                statuses[0] = statuses.get(0, 0) + 1  # the server closed the connection
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=100, help="distinct 4 MB configs")
    parser.add_argument("--many", type=int, default=2000, help="distinct ~16 KiB configs")
    parser.add_argument("--compare", metavar="DIR", help="another checkout to measure beside")
    args = parser.parse_args()
    # An empty server file: every gateway, however old, reads it.
    settings = Path(tempfile.mkdtemp()) / "portkey-mw.yaml"
    settings.write_text("{}\n", encoding="utf-8")
    runs = [("gateway", None)] + ([("compared", args.compare)] if args.compare else [])
    print(f"{'':10}{'start MiB':>10}{'after big':>11}{'after many':>11}  statuses; last request")
    for name, checkout in runs:
        port = free_port()
        process = start(port, checkout, settings)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base + "/health")
            send_configs(base, 5, 100, "warm")
            start_rss = rss_mib(process.pid)
            big = send_configs(base, args.big, 4 * 1024 * 1024, "big")
            after_big = rss_mib(process.pid)
            many = send_configs(base, args.many, 15 * 1024, "many")
            after_many = rss_mib(process.pid)
            last = httpx.get(f"{base}/health", timeout=10).status_code  # still answering
        finally:
            process.terminate()
            process.wait(20)
        print(
            f"{name:10}{start_rss:>10.0f}{after_big:>11.0f}{after_many:>11.0f}"
            f"  big {big}, many {many}; {last}"
        )


if __name__ == "__main__":
    main()

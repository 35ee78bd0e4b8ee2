"""What several benchmarks share: requests through a gateway's ASGI interface (no sockets,
so the figures are the gateway's own), its admin calls, and a throwaway redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event

from portkey_mw import Gateway, ServerSettings
from portkey_mw.store.sql import SQLStore

#: the admin key the benchmarks' gateways run with (set as PORTKEY_MW_ADMIN_KEY)
ADMIN_KEY = "bench-admin-key-0123456789"


async def call(
    gateway: Gateway, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    """One request through the gateway's ASGI interface: its status and body."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [
            (k.encode(), v.encode())
            for k, v in {"content-type": "application/json", **headers}.items()
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8787),
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await gateway(scope, receive, send)
    return status, b"".join(chunks)


async def batches(run: Callable[[int], Awaitable[None]], requests: int) -> float:
    """Mean µs per call of ``run(i)``: the median over 10 batches (after 200 warm-up calls).

    After each call the loop runs its other tasks once (the log sinks): what a request
    costs includes taking its record, as in a server, and no sink's queue fills and drops.
    """
    for i in range(200):
        await run(i)
        await asyncio.sleep(0)
    batch = max(1, requests // 10)
    means = []
    for b in range(10):
        started = time.perf_counter()
        for i in range(batch):
            await run(b * batch + i)
            await asyncio.sleep(0)
        means.append((time.perf_counter() - started) / batch * 1e6)
    return statistics.median(means)


async def admin(gateway: Gateway, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """An admin ``POST`` (with :data:`ADMIN_KEY`) that must succeed: its JSON answer."""
    status, reply = await call(
        gateway, "POST", path, {"x-portkey-api-key": ADMIN_KEY}, orjson.dumps(body)
    )
    assert status == 200, reply
    parsed: dict[str, Any] = orjson.loads(reply)
    return parsed


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """``redis-server`` on a free loopback port, without persistence, for the run: its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("needs redis-server (Debian package redis-server), or --redis-url")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen(
        [*command, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(10)


@dataclass
class StoreBench:
    """A started gateway over a fresh SQLite store, the mock provider, a virtual key for it
    and a ``completions.write`` API key; ``statements`` counts the SQL the store runs."""

    gateway: Gateway
    store: SQLStore
    virtual_key: str
    api_key: str
    statements: int = 0

    def _count(self, *_: Any) -> None:
        self.statements += 1


async def store_bench(data: Path, **settings: Any) -> StoreBench:
    """:class:`StoreBench` in the directory ``data`` (the admin key is :data:`ADMIN_KEY`).

    :param settings: more of the server file (``logging`` ...).
    """
    os.environ["PORTKEY_MW_ADMIN_KEY"] = ADMIN_KEY
    os.environ["PORTKEY_MW_AUTH"] = "optional"
    store = SQLStore(
        f"sqlite+aiosqlite:///{data / 'control.db'}", master_key=os.urandom(32), data_dir=data
    )
    server = ServerSettings.from_mapping(
        {"mock": True, "plugins": {"block": ["portkey-mw.structlog-sink"]}, **settings}
    )
    gateway = Gateway(server, store=store)
    await gateway.startup()
    vk = await admin(
        gateway, "/v1/virtual-keys", {"name": "bench", "provider": "mock", "key": "sk-bench"}
    )
    key = await admin(
        gateway,
        "/v1/api-keys/organisation/service",
        {"name": "bench", "scopes": ["completions.write"]},
    )
    bench = StoreBench(gateway, store, vk["slug"], key["key"])
    event.listen(store._db.sync_engine, "before_cursor_execute", bench._count)
    return bench

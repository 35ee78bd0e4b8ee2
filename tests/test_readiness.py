"""Ready from the first request: the embedding model loads at start-up, ``GET /ready`` says
when it has, and a semantic lookup that arrives meanwhile waits (within
``semantic_timeout``) instead of missing.

Loading is held back by a gate the test opens, so nothing here races a clock: the real
model loads, only later than it would.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from portkey_mw import Gateway
from portkey_mw.config.server import EmbeddingOptions
from portkey_mw.embedding import EmbeddingModel, EmbeddingUnavailable
from tests.conftest import DEADLINE, RunningGateway, ThreadedServer, server_file
from tests.fake_upstream import FakeUpstream

INDEX_PLUGIN = "portkey-mw.qdrant-cache"


pytestmark = pytest.mark.usefixtures("needs_embedding_model")


class GatedModel(EmbeddingModel):
    """The real model, whose loading waits until the test opens :attr:`gate`."""

    def __init__(self) -> None:
        super().__init__(EmbeddingOptions())
        self.gate = threading.Event()
        #: callers that waited for the model (lookups, then stores)
        self.waits = 0

    def _load(self) -> Any:
        if not self.gate.wait(DEADLINE):
            raise EmbeddingUnavailable("the test never opened the gate")
        return super()._load()

    async def wait_ready(self) -> None:
        self.waits += 1
        await super().wait_ready()


@contextlib.contextmanager
def gated_gateway(path: Path, model: EmbeddingModel) -> Iterator[RunningGateway]:
    """The gateway of ``path`` served by uvicorn in a thread, with ``model`` as its
    embedding model (set before start-up, so start-up loads it)."""
    gateway = Gateway(config_file=path)
    gateway.cache.embedder = model
    try:
        with ThreadedServer(gateway) as server:
            try:
                yield RunningGateway("threaded", server.url, server.url, app=gateway)
            finally:
                if isinstance(model, GatedModel):
                    model.gate.set()  # nothing may still wait for it at shutdown
                    wait_until(lambda: not model.loading)
    finally:
        model.close()


def settings_file(tmp_path: Path, fake: FakeUpstream, index: Path, **cache: Any) -> Path:
    """A server file whose Qdrant index persists in ``index``."""
    return server_file(
        tmp_path,
        fake,
        cache=cache,
        plugins={"settings": {INDEX_PLUGIN: {"path": str(index)}}},
    )


def ask(
    gateway: RunningGateway, fake: FakeUpstream, question: str, *, settle: bool = True
) -> tuple[str, str]:
    """One semantic-cache chat request; the cache status and the answer, once the gateway
    stored what it will store (unless ``settle`` is false)."""
    config = {
        "provider": "openai",
        "custom_host": fake.base_url,
        "cache": {"mode": "semantic", "max_age": 60},
    }
    reply = httpx.post(
        gateway.base_url + "/chat/completions",
        headers={
            "authorization": "Bearer sk-ready",
            "x-portkey-config": orjson.dumps(config).decode(),
            "x-portkey-cache-namespace": "ready",
        },
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]},
        timeout=DEADLINE,
    )
    assert reply.status_code == 200, reply.text
    if settle:
        gateway.settle()
    answer = reply.json()["choices"][0]["message"]["content"]
    return reply.headers["x-portkey-cache-status"], answer


def wait_until(predicate: Any, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, "condition not met before the deadline"
        time.sleep(0.01)


def test_ready_is_503_while_the_model_loads_then_200(tmp_path: Path, fake: FakeUpstream) -> None:
    model = GatedModel()
    with gated_gateway(settings_file(tmp_path, fake, tmp_path / "index"), model) as gateway:
        reply = httpx.get(gateway.root + "/ready")
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
        error = reply.json()["error"]
        assert error["code"] == "not_ready"
        assert error["type"] == "api_error"
        assert "embedding model" in error["message"] and "still loading" in error["message"]
        # Liveness is not readiness: the process answers its health check meanwhile.
        assert httpx.get(gateway.root + "/health").status_code == 200
        assert model.loading and not model.ready  # start-up began the load, not a request

        model.gate.set()
        wait_until(lambda: httpx.get(gateway.root + "/ready").status_code == 200)
        assert httpx.get(gateway.root + "/ready").json() == {"status": "ready"}
        assert httpx.get(gateway.root + "/v1/ready").status_code == 200
        assert model.ready
    assert len(fake.requests) == 0  # readiness calls no provider


def test_without_a_semantic_index_the_gateway_is_ready_at_once(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    model = GatedModel()  # its gate stays shut: nothing may wait for it
    path = server_file(tmp_path, fake, plugins={"block": [INDEX_PLUGIN]})
    gateway = Gateway(config_file=path)
    gateway.cache.embedder = model
    try:
        with ThreadedServer(gateway) as server:
            reply = httpx.get(server.url + "/ready")
            assert (reply.status_code, reply.json()) == (200, {"status": "ready"})
            assert not model.loading  # semantic caching cannot be used: nothing loads
    finally:
        model.gate.set()
        model.close()


def test_a_cold_start_lookup_waits_for_the_model_and_hits(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    index = tmp_path / "index"
    path = settings_file(tmp_path, fake, index, semantic_timeout=DEADLINE)
    # A first run caches an answer, in the index on disk.
    with gated_gateway(path, EmbeddingModel(EmbeddingOptions())) as first:
        assert ask(first, fake, "How do I reset my password?") == (
            "MISS",
            "echo: How do I reset my password?",
        )
    assert len(fake.requests) == 1

    # After a restart, a paraphrase arrives before the model has loaded.
    model = GatedModel()
    with gated_gateway(path, model) as gateway, ThreadPoolExecutor(1) as client:
        pending = client.submit(ask, gateway, fake, "How can I reset my password?")
        wait_until(lambda: model.waits >= 1)  # the lookup is waiting for the model
        assert not pending.done()
        assert httpx.get(gateway.root + "/ready").status_code == 503
        model.gate.set()
        assert pending.result(DEADLINE) == ("SEMANTIC_HIT", "echo: How do I reset my password?")
        # ...and the next identical-meaning request hits as well.
        assert ask(gateway, fake, "how do i reset my password please")[0] == "SEMANTIC_HIT"
    assert len(fake.requests) == 1  # the restarted gateway never called the upstream


def test_a_cold_lookup_first_waits_then_its_paraphrase_hits(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    model = GatedModel()
    path = settings_file(tmp_path, fake, tmp_path / "index", semantic_timeout=DEADLINE)
    with gated_gateway(path, model) as gateway, ThreadPoolExecutor(1) as client:
        pending = client.submit(ask, gateway, fake, "What is the boiling point of water?")
        wait_until(lambda: model.waits >= 1)
        assert not pending.done()  # waiting for the model, not skipped as a miss
        model.gate.set()
        assert pending.result(DEADLINE)[0] == "MISS"  # nothing was cached yet
        status, answer = ask(gateway, fake, "What's the boiling point of water?")
        assert (status, answer) == ("SEMANTIC_HIT", "echo: What is the boiling point of water?")
    assert len(fake.requests) == 1


def test_a_wait_past_semantic_timeout_is_a_miss_within_the_bound(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    timeout = 0.5
    model = GatedModel()
    path = settings_file(tmp_path, fake, tmp_path / "index", semantic_timeout=timeout)
    with gated_gateway(path, model) as gateway:
        started = time.monotonic()
        status, answer = ask(gateway, fake, "How many legs does a spider have?", settle=False)
        elapsed = time.monotonic() - started
        assert (status, answer) == ("MISS", "echo: How many legs does a spider have?")
        assert elapsed >= timeout  # it waited for the model...
        assert elapsed < timeout + 5.0  # ...no longer than its bound (plus the upstream call)
        # Giving up did not cancel the load: it finishes, and the answer (whose store
        # waits for the model) is then stored.
        assert model.loading and not model.ready
        model.gate.set()
        wait_until(lambda: httpx.get(gateway.root + "/ready").status_code == 200)
        gateway.settle()
        assert ask(gateway, fake, "How many legs do spiders have?")[0] == "SEMANTIC_HIT"
    assert len(fake.requests) == 1

"""Two ``portkey-mw serve`` replicas sharing one real ``redis-server`` hold one budget and
one rate limit between them, and no client request fails while Redis is away.

The module starts one redis-server (as the ``redis_server`` fixture does: skipped when it
is not installed, a failure under ``CI=true``) and two ``portkey-mw serve`` processes with
``PORTKEY_MW_AUTH=required`` and ``PORTKEY_MW_REDIS_URL`` pointing at it. Both open one
SQLite control store, polled every 0.2 s, so a key an admin creates through replica A
reaches replica B quickly (the tests wait until B accepts it). Every test makes its own
keys. Clients are httpx's ``AsyncClient``, alternating between the replicas; the provider
is the fake upstream.

What the tests rely on (docs/limits.md): a budget is checked before a request and charged
after its answer is sent, from the usage the provider reported; a rate limit is GCRA, each
admission one atomic Lua step in Redis. Redis's own state is read directly where the test
needs the shared usage (its key layout is documented there too).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import portkey_ai
import pytest
import redis

from tests import planted
from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN_KEY, OPENAI_KEY
from tests.redis_server import RedisServer, running_redis

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
#: the fake upstream's usage for BODY: 2 prompt words, 3 completion pieces
TOKENS_PER_REQUEST = 5
DEADLINE = 20.0


@dataclass
class Replicas:
    """Two gateways over one store and one Redis, and what clients need to call them."""

    a: RunningGateway
    b: RunningGateway
    redis: RedisServer
    fake: FakeUpstream
    slug: str = ""
    outputs: list[Path] = field(default_factory=list)

    @property
    def both(self) -> tuple[RunningGateway, RunningGateway]:
        return self.a, self.b

    @contextlib.contextmanager
    def admin(self) -> Iterator[portkey_ai.Portkey]:
        """The portkey-ai SDK as the admin, on replica A (closed after use: the fixture
        that closes SDK clients runs per test, and this one may outlive a test)."""
        sdk = portkey_ai.Portkey(api_key=ADMIN_KEY, base_url=self.a.base_url)
        try:
            yield sdk
        finally:
            sdk.close()

    def api_key(self, name: str, **limits: Any) -> tuple[str, str]:
        """A new API key made through replica A: its id and its secret."""
        with self.admin() as sdk:
            made = sdk.api_keys.create(
                name=name,
                type="organisation",
                sub_type="service",
                scopes=["completions.write"],
                **limits,
            )
        return str(made.id), planted.plant(str(made.key))

    def headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}", "x-portkey-virtual-key": self.slug}

    def known_to_b(self, key: str) -> int:
        """Wait until replica B serves ``key`` (its catalog polls the store); the one
        request B then admits counts against the key's limits like any other."""
        end = time.monotonic() + DEADLINE
        while True:
            answer = httpx.post(
                self.b.base_url + "/chat/completions", json=BODY, headers=self.headers(key)
            )
            if answer.status_code == 200:
                return int(answer.json()["usage"]["total_tokens"])
            # Unknown to B yet: refused before any limit is consulted.
            assert answer.status_code == 401, answer.text
            assert time.monotonic() < end, "replica B never learnt the key"
            time.sleep(0.05)

    def logged(self, event: str) -> list[int]:
        """How many times each replica's output has logged ``event`` so far."""
        return [path.read_text(errors="replace").count(f'"{event}"') for path in self.outputs]


@contextlib.contextmanager
def replicas(tmp_path: Path, fake: FakeUpstream, server: RedisServer) -> Iterator[Replicas]:
    store = {
        "url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}",
        # the bound on how long B takes to learn a key A made
        "refresh_interval": 0.2,
    }
    path = server_file(tmp_path, fake, store=store)
    env = {"PORTKEY_MW_AUTH": "required", "PORTKEY_MW_REDIS_URL": redis_url(server)}
    # One after the other: the first creates the store's tables, the second finds them.
    with standalone_gateway(path, env) as a, standalone_gateway(path, env) as b:
        assert a.output is not None and b.output is not None
        running = Replicas(a, b, server, fake, outputs=[a.output, b.output])
        with running.admin() as sdk:
            made = sdk.virtual_keys.create(
                name="openai", provider="openai", key=OPENAI_KEY, custom_host=fake.base_url
            )
        running.slug = str(made.slug)
        yield running


def redis_url(server: RedisServer) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


def used_in_redis(server: RedisServer, key_id: str, kind: str = "tokens") -> float:
    """The shared usage of API key ``key_id``'s budget, as Redis holds it (the key layout
    is documented in docs/limits.md)."""
    with redis.Redis(port=server.port) as client:
        value = client.hget(f"portkey-mw:limits:{{api_key:{key_id}}}:budget:{kind}", "used")
    return float(value or 0)


def poll(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"{what} within {deadline}s"
        time.sleep(0.05)


def client() -> httpx.AsyncClient:
    # As many connections as requests: the concurrency is the test's, not the pool's.
    return httpx.AsyncClient(
        timeout=DEADLINE, limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)
    )


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """One redis-server for the module's replicas (the rules of the ``redis_server``
    fixture: skipped without redis-server, except under ``CI=true``)."""
    with running_redis() as server:
        yield server


@pytest.fixture(scope="module")
def started(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_server: FakeUpstream,
    shared_redis: RedisServer,
) -> Iterator[Replicas]:
    # Started once for the module (a serve process takes seconds to start on a busy
    # machine); every test makes its own keys, so none sees another's counters.
    with replicas(tmp_path_factory.mktemp("replicas"), upstream_server, shared_redis) as running:
        yield running


@pytest.fixture
def pair(started: Replicas, fake: FakeUpstream) -> Replicas:
    """The replicas, with the fake upstream's scripts and records cleared for this test,
    and Redis running."""
    if started.redis.proc is None:  # a test that stopped it failed before restarting it
        started.redis.start()
    return started


async def load(
    pair: Replicas, key: str, total: int, concurrency: int
) -> tuple[list[httpx.Response], int]:
    """``total`` requests alternating between the replicas, ``concurrency`` at a time: the
    answers, and the most requests the client had sent and not yet seen answered at once."""
    gate = asyncio.Semaphore(concurrency)
    headers = pair.headers(key)
    urls = itertools.cycle([gw.base_url + "/chat/completions" for gw in pair.both])
    waiting = peak = 0

    async def one(http: httpx.AsyncClient, url: str) -> httpx.Response:
        nonlocal waiting, peak
        async with gate:
            waiting += 1
            peak = max(peak, waiting)
            try:
                return await http.post(url, json=BODY, headers=headers)
            finally:
                waiting -= 1

    async with client() as http:
        answers = await asyncio.gather(*(one(http, next(urls)) for _ in range(total)))
    return answers, peak


def chat_calls(fake: FakeUpstream) -> int:
    return len([r for r in fake.requests if r.path == CHAT])


def test_two_replicas_hold_one_token_budget(pair: Replicas) -> None:
    """200 requests at a concurrency of 20 over both replicas against one 500-token budget
    (100 requests' worth) stop at the shared budget, overspending at most the tokens of
    the requests in flight when it ran out; the rest are 412, before the provider.

    How "in flight" is bounded: a request counts against the budget from its admission
    until its charge, which lands just after its answer is sent. The client holds at most
    20 requests between sending and receiving (a semaphore; the peak is measured too). A
    slot's next request may be admitted before the previous one's charge landed, but not
    a third: the upstream holds every admitted request 0.1 s, far longer than a charge's
    one Redis round trip. So at most 2 x 20 requests are ever in flight, and the overspend
    is at most that many requests' tokens. Had each replica counted alone, both would have
    admitted 100 and all 200 would have passed.
    """
    concurrency, total, credit = 20, 200, 100 * TOKENS_PER_REQUEST
    key_id, key = pair.api_key("budget", usage_limits={"type": "tokens", "credit_limit": credit})
    assert pair.known_to_b(key) == TOKENS_PER_REQUEST  # what every request costs
    pair.fake.script(CHAT, *[Reply(delay=0.1) for _ in range(total)])
    answers, peak = asyncio.run(load(pair, key, total, concurrency))

    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 412}, statuses
    for refused in (answer for answer in answers if answer.status_code == 412):
        error = refused.json()["error"]
        assert error["code"] == "budget_exhausted"
        assert "budget of API key 'budget' is exhausted" in error["message"]
    admitted = statuses[200] + 1  # and the request through which B learnt the key
    assert chat_calls(pair.fake) == admitted  # no refused request reached the provider
    poll(
        lambda: used_in_redis(pair.redis, key_id) == admitted * TOKENS_PER_REQUEST,
        "every admitted request charged to the shared budget",
    )
    overspend = used_in_redis(pair.redis, key_id) - credit
    in_flight = 2 * peak
    print(
        f"\nbudget of {credit} tokens, {TOKENS_PER_REQUEST} a request: admitted {admitted} "
        f"of {total + 1}, overspend {overspend:g} tokens ({overspend / TOKENS_PER_REQUEST:g} "
        f"requests); in flight at most {in_flight} (client peak {peak})"
    )
    assert peak <= concurrency
    assert admitted >= credit // TOKENS_PER_REQUEST  # spent to the end, not refused early
    assert 0 <= overspend <= in_flight * TOKENS_PER_REQUEST


def test_two_replicas_hold_one_rate_limit(pair: Replicas) -> None:
    """200 requests at once over both replicas against one key's 50 requests per hour
    (per hour, so nothing drains meanwhile): at most 50 + 2 are admitted between them,
    the rest answered 429 with Retry-After and OpenAI's rate-limit headers."""
    limit, total, replicas_count = 50, 200, 2
    _, key = pair.api_key("rate", rate_limits=[{"type": "requests", "unit": "rph", "value": limit}])
    pair.known_to_b(key)
    answers, _ = asyncio.run(load(pair, key, total, total))

    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 429}, statuses
    admitted = statuses[200] + 1  # and the request through which B learnt the key
    print(f"\nrate limit of {limit} rph: admitted {admitted} of {total + 1}")
    assert limit <= admitted <= limit + replicas_count
    assert chat_calls(pair.fake) == admitted
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == str(limit)
        if answer.status_code == 429:
            error = answer.json()["error"]
            assert error["code"] == "rate_limit_exceeded"
            assert "API key 'rate': 50 requests per hour (rph)" in error["message"]
            assert int(answer.headers["retry-after"]) > 0
            assert int(answer.headers["retry-after-ms"]) > 0
            assert answer.headers["x-ratelimit-remaining-requests"] == "0"


def limits_state(gw: RunningGateway) -> Any:
    """``GET /v1/admin/limits`` of ``gw``, or None where the route does not exist."""
    answer = httpx.get(gw.base_url + "/admin/limits", headers={"x-portkey-api-key": ADMIN_KEY})
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()


def degraded(state: Any) -> bool | None:
    """The ``degraded`` flag anywhere in an admin state document (None: not there)."""
    if isinstance(state, dict):
        if isinstance(state.get("degraded"), bool):
            return bool(state["degraded"])
        found = [degraded(value) for value in state.values()]
    elif isinstance(state, list):
        found = [degraded(value) for value in state]
    else:
        return None
    return next((flag for flag in found if flag is not None), None)


@dataclass
class Flow:
    """Requests sent without pause by a few workers, alternating between the replicas,
    until told to stop; every outcome kept (a status, or the error that replaced one)."""

    pair: Replicas
    key: str
    workers: int = 8
    outcomes: list[int | str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        urls = itertools.cycle([gw.base_url + "/chat/completions" for gw in self.pair.both])
        headers = self.pair.headers(self.key)

        async def worker(http: httpx.AsyncClient) -> None:
            while not self.stop.is_set():
                try:
                    answer = await http.post(next(urls), json=BODY, headers=headers)
                except httpx.HTTPError as exc:
                    self.outcomes.append(type(exc).__name__)
                else:
                    self.outcomes.append(answer.status_code)

        async with client() as http:
            await asyncio.gather(*(worker(http) for _ in range(self.workers)))

    async def more(self, count: int) -> None:
        """Wait until ``count`` more requests were answered."""
        wanted = len(self.outcomes) + count
        end = time.monotonic() + DEADLINE
        while len(self.outcomes) < wanted:
            assert time.monotonic() < end, f"{count} more requests not answered in time"
            await asyncio.sleep(0.01)

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Keep the requests flowing until ``condition`` (checked off the event loop)."""
        end = time.monotonic() + DEADLINE
        while not await asyncio.to_thread(condition):
            assert time.monotonic() < end, f"{what} within {DEADLINE}s"
            await asyncio.sleep(0.05)


async def through_an_outage(pair: Replicas, key: str) -> tuple[list[int | str], list[Any]]:
    """Requests flow while Redis is killed and started again: every outcome, and each
    replica's admin limits state while Redis was down."""
    flow = Flow(pair, key)
    running = asyncio.get_running_loop().create_task(flow.run())
    try:
        await flow.more(40)
        await asyncio.to_thread(pair.redis.stop)
        await flow.until(
            lambda: all(pair.logged("limits.redis_unavailable")),
            "both replicas logged limits.redis_unavailable",
        )
        await flow.more(40)  # served on per-process counters
        states = [await asyncio.to_thread(limits_state, gw) for gw in pair.both]
        await asyncio.to_thread(pair.redis.start)  # on its port, and empty
        await flow.until(
            lambda: all(pair.logged("limits.redis_recovered")),
            "both replicas logged limits.redis_recovered",
        )
        await flow.more(40)
    finally:
        flow.stop.set()
        await running
    return flow.outcomes, states


def test_redis_killed_mid_test_fails_no_request_and_shared_enforcement_resumes(
    pair: Replicas,
) -> None:
    """Redis killed while requests flow through both replicas: every request is still
    answered 200 (its key's limits are far away), each replica logs
    ``limits.redis_unavailable`` and, where the admin route exists, reports itself
    degraded. Redis back on its port: both replicas log ``limits.redis_recovered`` and
    share their counters again, shown with a fresh key of 10 requests per hour: B admits
    one, A nine, and then B refuses the eleventh, which only a shared count can do."""
    _, key = pair.api_key(
        "flow",
        usage_limits={"type": "tokens", "credit_limit": 10**9},
        rate_limits=[{"type": "requests", "unit": "rph", "value": 10**6}],
    )
    pair.known_to_b(key)
    outcomes, states = asyncio.run(through_an_outage(pair, key))
    assert len(outcomes) >= 120
    assert Counter(outcomes) == {200: len(outcomes)}, Counter(outcomes)
    for state in states:
        if state is not None:
            assert degraded(state) is True, state
    for state in (limits_state(gw) for gw in pair.both):
        if state is not None:
            assert degraded(state) is False, state

    _, fresh = pair.api_key("fresh", rate_limits=[{"type": "requests", "unit": "rph", "value": 10}])
    pair.known_to_b(fresh)  # admitted by B: 1 of 10
    for _ in range(9):
        answer = httpx.post(
            pair.a.base_url + "/chat/completions", json=BODY, headers=pair.headers(fresh)
        )
        assert answer.status_code == 200, answer.text
    for gw in (pair.b, pair.a):
        refused = httpx.post(
            gw.base_url + "/chat/completions", json=BODY, headers=pair.headers(fresh)
        )
        assert refused.status_code == 429, refused.text
        assert "API key 'fresh': 10 requests per hour (rph)" in refused.json()["error"]["message"]
    # One outage each, logged once: the recovery held (no second outage from connections
    # opened before it), and no request was counted alone meanwhile.
    assert pair.logged("limits.redis_unavailable") == [1, 1]
    assert pair.logged("limits.redis_recovered") == [1, 1]

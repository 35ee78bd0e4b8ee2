"""Budget usage through the admin API: the usage routes of API keys, virtual keys and
providers, ``reset_usage`` on updates, what detail and list reads add, and the operator's
``/v1/admin/budgets`` and ``/v1/admin/limits``.

A real gateway over SQLite, served by uvicorn in this process (so that the test owns the
limits' clock); an admin drives it through the portkey-ai SDK and plain HTTP. Budgets are
spent by real requests to the fake upstream, or charged straight into the in-process
backend where only the figure matters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import portkey_ai
import pytest
from portkey_ai.api_resources import exceptions as errors

from portkey_mw.limits.spec import parse_budget
from tests import planted
from tests.conftest import RunningGateway, ThreadedServer, server_file
from tests.fake_upstream import FakeUpstream
from tests.planted import ADMIN_KEY, OPENAI_KEY
from tests.redis_server import RedisServer

MESSAGES = [{"role": "user", "content": "hello there"}]
MONTHLY_TOKENS = {"type": "tokens", "credit_limit": 100, "periodic_reset": "monthly"}
RATE_LIMITS = [
    {"type": "requests", "unit": "rpm", "value": 60},
    {"type": "tokens", "unit": "rpm", "value": 100000},
]
METADATA = [
    {
        "name": "search",
        "match": {"team": "search"},
        "usage_limits": {"credit_limit": 200, "type": "cost", "periodic_reset": "weekly"},
    },
    {"match": {"team": "ads"}, "rate_limits": [{"type": "requests", "unit": "rph", "value": 10}]},
]


class Clock:
    """Epoch seconds the test sets by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


#: the limits' clock of the gateways these tests run (a budget's period is fixed by it)
START = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


@contextlib.contextmanager
def run_gateway(
    tmp_path: Path,
    fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    start: datetime | None = START,
    **limits: Any,
) -> Iterator[RunningGateway]:
    """A gateway over a SQLite store in ``tmp_path`` (with the metadata budgets above),
    its limits' clock at ``start`` (None: the real time), served on loopback."""
    from portkey_mw import Gateway

    monkeypatch.setenv("PORTKEY_MW_AUTH", "required")
    if "redis_url" not in limits:
        monkeypatch.delenv("PORTKEY_MW_REDIS_URL", raising=False)
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    path = server_file(tmp_path, fake, store=store, limits={"metadata": METADATA, **limits})
    gateway = Gateway(config_file=path)
    if start is not None:
        gateway.spend.backend.clock = Clock(start)
    with ThreadedServer(gateway) as server:
        yield RunningGateway("mounted", server.url, server.url, app=gateway)


@pytest.fixture
def gw(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningGateway]:
    with run_gateway(tmp_path, fake, monkeypatch) as running:
        yield running


def admin(gw: RunningGateway) -> portkey_ai.Portkey:
    return portkey_ai.Portkey(api_key=ADMIN_KEY, base_url=gw.base_url)


def http(gw: RunningGateway, key: str = ADMIN_KEY) -> httpx.Client:
    return httpx.Client(base_url=gw.base_url, headers={"x-portkey-api-key": key}, timeout=10)


def api_key(gw: RunningGateway, scopes: tuple[str, ...] = ("completions.write",), **kw: Any) -> str:
    made = admin(gw).api_keys.create(
        name=kw.pop("name", "app"),
        type="organisation",
        sub_type="service",
        scopes=list(scopes),
        **kw,
    )
    planted.plant(str(made.key))
    return str(made.id)


def key_of(gw: RunningGateway, **kw: Any) -> tuple[str, str]:
    """An API key that may call the data plane: its id and the key."""
    made = admin(gw).api_keys.create(
        name=kw.pop("name", "client"),
        type="organisation",
        sub_type="service",
        scopes=kw.pop("scopes", ["completions.write"]),
        **kw,
    )
    return str(made.id), planted.plant(str(made.key))


def virtual_key(gw: RunningGateway, fake: FakeUpstream, slug: str, **kw: Any) -> str:
    made = admin(gw).virtual_keys.create(
        name=kw.pop("name", slug),
        provider="openai",
        key=OPENAI_KEY,
        custom_host=fake.base_url,
        slug=slug,
        **kw,
    )
    return str(made.slug)


def charge(gw: RunningGateway, subject: str, usage_limits: dict[str, Any], amount: float) -> None:
    """Charge ``amount`` to a budget in the gateway's (in-process, thread-safe) backend."""
    backend = gw.app.spend.backend
    asyncio.run(backend.charge(subject, parse_budget(usage_limits), amount))


def stored(gw: RunningGateway, slug: str) -> Any:
    """The virtual key as the gateway's catalog holds it (taken in at each admin write)."""
    return gw.app.control.catalog.virtual_keys[slug]


def body_of(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


# -- the usage routes ------------------------------------------------------------------------


def test_an_api_keys_usage_and_its_reset(gw: RunningGateway) -> None:
    key_id = api_key(gw, name="ci", usage_limits=MONTHLY_TOKENS, rate_limits=RATE_LIMITS)
    charge(gw, f"api_key:{key_id}", MONTHLY_TOKENS, 40)
    with http(gw) as client:
        usage = body_of(client.get(f"/api-keys/{key_id}/usage"))
        assert usage == {
            "object": "usage",
            "subject": f"api_key:{key_id}",
            "kind": "api_key",
            "ref": key_id,
            "name": "ci",
            "owner": "API key 'ci'",
            "budget": {
                "type": "tokens",
                "credit_limit": 100.0,
                "used": 40.0,
                "remaining": 60.0,
                "alert_threshold": None,
                "exhausted": False,
                "period_start": "2030-01-01T00:00:00Z",
                "next_reset": "2030-02-01T00:00:00Z",
                "periodic_reset": "monthly",
                "periodic_reset_days": None,
                "description": "100 tokens per month",
            },
            "rate_limits": [
                {
                    "type": "requests",
                    "unit": "rpm",
                    "value": 60,
                    "description": "60 requests per minute (rpm)",
                },
                {
                    "type": "tokens",
                    "unit": "rpm",
                    "value": 100000,
                    "description": "100000 tokens per minute (rpm)",
                },
            ],
            "backend": "memory",
            "degraded": False,
        }
        reset = body_of(client.post(f"/api-keys/{key_id}/usage/reset"))
        assert reset["budget"]["used"] == 0 and reset["budget"]["remaining"] == 100
        assert body_of(client.get(f"/api-keys/{key_id}/usage"))["budget"]["used"] == 0


def test_virtual_key_and_provider_usage_are_one_record(
    gw: RunningGateway, fake: FakeUpstream
) -> None:
    limits = {"type": "cost", "credit_limit": 50, "alert_threshold": 40, "periodic_reset_days": 7}
    slug = virtual_key(gw, fake, "openai-prod", usage_limits=limits)
    record = stored(gw, slug)
    subject = gw.app.spend.virtual_key(record)
    asyncio.run(gw.app.spend.backend.charge(subject.key, subject.budget, 12.5))
    with http(gw) as client:
        through_vk = body_of(client.get(f"/virtual-keys/{slug}/usage"))
        through_provider = body_of(client.get(f"/providers/{slug}/usage"))
        assert through_vk == through_provider
        assert through_vk["subject"] == f"virtual_key:{record.id}"
        assert through_vk["kind"] == "virtual_key" and through_vk["ref"] == slug
        budget = through_vk["budget"]
        assert budget["used"] == 12.5 and budget["remaining"] == 37.5
        assert budget["alert_threshold"] == 40 and budget["periodic_reset_days"] == 7
        assert budget["description"] == "50 USD every 7 days"
        # every 7 days from the record's creation (a real clock's moment: milliseconds)
        assert budget["next_reset"].endswith("Z") and budget["period_start"] is not None
        assert body_of(client.post(f"/providers/{slug}/usage/reset"))["budget"]["used"] == 0
        assert body_of(client.get(f"/virtual-keys/{slug}/usage"))["budget"]["used"] == 0
        charge_again = body_of(client.post(f"/virtual-keys/{slug}/usage/reset"))
        assert charge_again["owner"] == f"virtual key {slug!r}"


def test_a_record_without_a_budget(gw: RunningGateway, fake: FakeUpstream) -> None:
    slug = virtual_key(gw, fake, "unlimited")
    key_id = api_key(gw, name="limited", rate_limits=RATE_LIMITS[:1])
    with http(gw) as client:
        usage = body_of(client.get(f"/virtual-keys/{slug}/usage"))
        assert usage["budget"] is None and usage["rate_limits"] == []
        assert usage["owner"] == "virtual key 'unlimited'" and usage["degraded"] is False
        only_rates = body_of(client.get(f"/api-keys/{key_id}/usage"))
        assert only_rates["budget"] is None and len(only_rates["rate_limits"]) == 1
        for path in (f"/virtual-keys/{slug}", f"/providers/{slug}", f"/api-keys/{key_id}"):
            error = body_of(client.post(f"{path}/usage/reset"), 400)["error"]
            assert error["code"] == "no_budget", error
            assert "has no budget" in error["message"]
        assert (
            "virtual key 'unlimited'"
            in body_of(client.post(f"/virtual-keys/{slug}/usage/reset"), 400)["error"]["message"]
        )


def test_unknown_ids_are_404_naming_them(gw: RunningGateway) -> None:
    with http(gw) as client:
        for path, code in (
            ("/virtual-keys/nope-vk", "virtual_key_not_found"),
            ("/providers/nope-vk", "provider_not_found"),
            ("/api-keys/nope-id", "api_key_not_found"),
        ):
            for answer in (client.get(f"{path}/usage"), client.post(f"{path}/usage/reset")):
                error = body_of(answer, 404)["error"]
                assert error["code"] == code and "nope-" in error["message"], error
        wrong = body_of(client.put("/api-keys/x/usage"), 405)
        assert wrong["error"]["code"] == "method_not_allowed"


def test_the_usage_routes_need_the_records_scopes(gw: RunningGateway, fake: FakeUpstream) -> None:
    slug = virtual_key(gw, fake, "scoped", usage_limits=MONTHLY_TOKENS)
    target = api_key(gw, name="target", usage_limits=MONTHLY_TOKENS)
    _, nothing = key_of(gw, name="plain")
    _, reader = key_of(
        gw, name="reader", scopes=["virtual_keys.read", "organisation_service_api_keys.read"]
    )
    _, writer = key_of(
        gw,
        name="writer",
        scopes=[
            "completions.write",
            "virtual_keys.read",
            "virtual_keys.update",
            "organisation_service_api_keys.read",
            "organisation_service_api_keys.update",
        ],
    )
    with http(gw, nothing) as client:
        for path in (f"/virtual-keys/{slug}", f"/providers/{slug}"):
            error = body_of(client.get(f"{path}/usage"), 403)["error"]
            assert error["code"] == "missing_scope" and "virtual_keys.read" in error["message"]
            error = body_of(client.post(f"{path}/usage/reset"), 403)["error"]
            assert "virtual_keys.update" in error["message"]
        assert body_of(client.get(f"/api-keys/{target}/usage"), 403)["error"]["code"] == (
            "missing_scope"
        )
        # a stranger learns nothing about which ids exist
        assert body_of(client.get("/api-keys/nope/usage"), 403)
    with http(gw, reader) as client:
        assert body_of(client.get(f"/virtual-keys/{slug}/usage"))["budget"] is not None
        assert body_of(client.get(f"/api-keys/{target}/usage"))["ref"] == target
        error = body_of(client.post(f"/providers/{slug}/usage/reset"), 403)["error"]
        assert "virtual_keys.update" in error["message"]
        error = body_of(client.post(f"/api-keys/{target}/usage/reset"), 403)["error"]
        assert "organisation_service_api_keys.update" in error["message"]
    with http(gw, writer) as client:
        assert body_of(client.post(f"/virtual-keys/{slug}/usage/reset"))["budget"]["used"] == 0
        assert body_of(client.post(f"/api-keys/{target}/usage/reset"))["budget"]["used"] == 0
    # resetting a key's budget acts with its powers: not for a key holding scopes one lacks
    mighty = api_key(gw, name="mighty", scopes=("configs.create",), usage_limits=MONTHLY_TOKENS)
    with http(gw, writer) as client:
        error = body_of(client.post(f"/api-keys/{mighty}/usage/reset"), 403)["error"]
        assert "configs.create" in error["message"]
        assert body_of(client.get(f"/api-keys/{mighty}/usage"))["ref"] == mighty


# -- reset_usage on updates, and what reads show --------------------------------------------------


def test_reset_usage_in_an_update_starts_the_period_over(
    gw: RunningGateway, fake: FakeUpstream
) -> None:
    sdk = admin(gw)
    slug = virtual_key(gw, fake, "resettable", usage_limits=MONTHLY_TOKENS)
    key_id = api_key(gw, name="resettable", usage_limits=MONTHLY_TOKENS)
    subject = f"virtual_key:{stored(gw, slug).id}"

    def used(path: str) -> float:
        with http(gw) as client:
            return float(body_of(client.get(f"{path}/usage"))["budget"]["used"])

    charge(gw, subject, MONTHLY_TOKENS, 30)
    updated = sdk.providers.update(slug=slug, note="kept", reset_usage=True)
    assert updated.slug == slug and not getattr(updated, "warning", None)
    assert used(f"/providers/{slug}") == 0
    assert sdk.providers.retrieve(slug=slug).note == "kept"

    charge(gw, subject, MONTHLY_TOKENS, 30)
    sdk.providers.update(slug=slug, note="not reset")  # without reset_usage
    assert used(f"/providers/{slug}") == 30
    sdk.virtual_keys.update(slug=slug, reset_usage=True)
    assert used(f"/virtual-keys/{slug}") == 0

    charge(gw, f"api_key:{key_id}", MONTHLY_TOKENS, 30)
    sdk.api_keys.update(id=key_id, reset_usage=True)
    assert used(f"/api-keys/{key_id}") == 0

    plain = virtual_key(gw, fake, "no-budget")
    answer = sdk.providers.update(slug=plain, reset_usage=True)
    assert "the record has no budget" in str(answer.warning)
    with http(gw) as client:
        refused = body_of(client.put(f"/providers/{slug}", json={"reset_usage": "yes"}), 400)
        assert refused["error"]["param"] == "reset_usage"


def test_detail_reads_say_exhausted_and_when_the_budget_resets(
    gw: RunningGateway, fake: FakeUpstream
) -> None:
    tiny = {"type": "tokens", "credit_limit": 1, "periodic_reset": "monthly"}
    slug = virtual_key(gw, fake, "tiny", usage_limits=tiny)
    key_id, key = key_of(gw, name="tiny-key", usage_limits=tiny)
    client = portkey_ai.Portkey(api_key=key, virtual_key=slug, base_url=gw.base_url)
    sdk = admin(gw)
    before = sdk.virtual_keys.retrieve(slug=slug)
    assert before.status == "active"
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # spends both
    gw.settle()

    detail = sdk.virtual_keys.retrieve(slug=slug)
    assert detail.status == "exhausted"
    assert detail.usage_limits["next_usage_reset_at"] == "2030-02-01T00:00:00Z"
    provider = sdk.providers.retrieve(slug=slug)
    assert provider.status == "exhausted"  # type: ignore[attr-defined]
    assert provider.usage_limits == detail.usage_limits
    assert provider.rate_limits == []
    key_detail = sdk.api_keys.retrieve(id=key_id)
    assert key_detail.status == "exhausted"
    assert key_detail.usage_limits["next_usage_reset_at"] == "2030-02-01T00:00:00Z"

    # lists stay cheap: the period's end, worked out, and the stored status
    (listed,) = [vk for vk in sdk.virtual_keys.list().data if vk["slug"] == slug]
    assert listed["status"] == "active"
    assert listed["usage_limits"]["next_usage_reset_at"] == "2030-02-01T00:00:00Z"
    (item,) = [p for p in sdk.providers.list().data if p.slug == slug]
    assert item.usage_limits["next_usage_reset_at"] == "2030-02-01T00:00:00Z"
    (listed_key,) = [k for k in sdk.api_keys.list().data if k["id"] == key_id]
    assert listed_key["status"] == "active"
    assert listed_key["usage_limits"]["next_usage_reset_at"] == "2030-02-01T00:00:00Z"

    # a disabled record says so, exhausted or not; a reset makes it active again
    sdk.virtual_keys.update(slug=slug, status="disabled")
    assert sdk.virtual_keys.retrieve(slug=slug).status == "disabled"
    sdk.virtual_keys.update(slug=slug, status="active", reset_usage=True)
    assert sdk.virtual_keys.retrieve(slug=slug).status == "active"
    # a record without a budget has no reset time
    other = virtual_key(gw, fake, "plain")
    assert sdk.virtual_keys.retrieve(slug=other).usage_limits is None
    with pytest.raises(errors.NotFoundError, match="nope"):
        sdk.virtual_keys.retrieve(slug="nope")


# -- the operator's routes ------------------------------------------------------------------------


def test_admin_budgets_lists_every_subject_with_limits(
    gw: RunningGateway, fake: FakeUpstream
) -> None:
    slug = virtual_key(gw, fake, "listed", usage_limits=MONTHLY_TOKENS)
    virtual_key(gw, fake, "not-listed")
    key_id = api_key(gw, name="budgeted", usage_limits=MONTHLY_TOKENS)
    rated = api_key(gw, name="rated", rate_limits=RATE_LIMITS)
    api_key(gw, name="free")
    charge(gw, f"api_key:{key_id}", MONTHLY_TOKENS, 25)
    with http(gw) as client:
        listing = body_of(client.get("/admin/budgets"))
        assert listing["object"] == "list" and listing["backend"] == "memory"
        assert listing["degraded"] is False and listing["invalid"] == []
        by_ref = {item["ref"]: item for item in listing["data"]}
        assert set(by_ref) == {slug, key_id, rated, "search", "team=ads"}
        assert listing["total"] == 5
        assert [item["kind"] for item in listing["data"]] == [
            "api_key",
            "api_key",
            "virtual_key",
            "metadata",
            "metadata",
        ]
        assert by_ref[key_id]["budget"]["used"] == 25 and by_ref[key_id]["name"] == "budgeted"
        assert by_ref[rated]["budget"] is None and len(by_ref[rated]["rate_limits"]) == 2
        search = by_ref["search"]
        assert search["subject"] == "metadata:team=search"
        assert search["owner"] == "metadata budget 'search' (team=search)"
        assert search["budget"]["description"] == "200 USD per week"
        assert search["budget"]["next_reset"] == "2030-01-21T00:00:00Z"  # the next Monday

        reset = body_of(
            client.post("/admin/budgets/reset", json={"kind": "api_key", "ref": key_id})
        )
        assert reset["ref"] == key_id and reset["budget"]["used"] == 0
        for kind, ref in (("virtual_key", slug), ("metadata", "search")):
            answer = body_of(client.post("/admin/budgets/reset", json={"kind": kind, "ref": ref}))
            assert answer["kind"] == kind and answer["budget"]["used"] == 0
        no_budget = body_of(
            client.post("/admin/budgets/reset", json={"kind": "metadata", "ref": "team=ads"}), 400
        )
        assert no_budget["error"]["code"] == "no_budget"
        assert "metadata budget 'team=ads'" in no_budget["error"]["message"]
        for kind, ref, code in (
            ("api_key", "nope-id", "api_key_not_found"),
            ("virtual_key", "nope-vk", "virtual_key_not_found"),
            ("metadata", "nope-team", "metadata_budget_not_found"),
        ):
            error = body_of(
                client.post("/admin/budgets/reset", json={"kind": kind, "ref": ref}), 404
            )["error"]
            assert error["code"] == code and "nope-" in error["message"], error
        for bad, param in (
            ({"kind": "team", "ref": "x"}, "kind"),
            ({"kind": "api_key"}, "ref"),
            ({"kind": "api_key", "ref": "x", "extra": 1}, "extra"),
        ):
            error = body_of(client.post("/admin/budgets/reset", json=bad), 400)["error"]
            assert error["param"] == param, error
        assert body_of(client.post("/admin/budgets/reset", content=b"[1]"), 400)
        assert body_of(client.get("/admin/budgets/reset"), 405)["error"]["code"] == (
            "method_not_allowed"
        )

        health = body_of(client.get("/admin/limits"))
        assert health["backend"] == "memory" and health["degraded"] is False
        assert health["metadata_budgets"] == ["search", "team=ads"]


def test_admin_budgets_need_the_admin_key(gw: RunningGateway) -> None:
    _, key = key_of(gw, name="scoped", scopes=["completions.write", "virtual_keys.read"])
    for sent in (key, ""):
        with http(gw, sent) as client:
            for answer in (
                client.get("/admin/budgets"),
                client.post("/admin/budgets/reset", json={"kind": "metadata", "ref": "search"}),
                client.get("/admin/limits"),
            ):
                assert answer.status_code == 401, answer.text
                assert answer.json()["error"]["message"]


def test_usage_through_redis_says_so(
    tmp_path: Path,
    fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    with run_gateway(tmp_path, fake, monkeypatch, backend="redis", redis_url=url) as running:
        key_id = api_key(running, name="shared", usage_limits=MONTHLY_TOKENS)
        with http(running) as client:
            usage = body_of(client.get(f"/api-keys/{key_id}/usage"))
            assert usage["backend"] == "redis" and usage["degraded"] is False
            assert usage["budget"]["used"] == 0
            health = body_of(client.get("/admin/limits"))
            assert health["backend"] == "redis" and "outages" in health
            assert body_of(client.post(f"/api-keys/{key_id}/usage/reset"))["backend"] == "redis"

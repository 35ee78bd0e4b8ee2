"""Budget usage through the admin API: the usage object the usage routes answer (the
routes are in :mod:`.api_keys` and :mod:`.virtual_keys`), and what record reads add to
Portkey's objects.

``GET .../usage`` answers one record's usage object (below); ``POST .../usage/reset``
starts its budget's current period over and answers the same. A detail read
(``virtual_keys.retrieve`` ...) reads the backend once: ``status`` says ``exhausted``
while the budget is, and ``usage_limits`` gains Portkey's ``next_usage_reset_at``. A list
read never reads the backend (one round trip per record would make listing a thousand
keys cost a thousand Redis calls): it only works out ``next_usage_reset_at``, which is
arithmetic on the budget's period.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from portkey_mw.admin.http import Call
from portkey_mw.admin.services import SpendView
from portkey_mw.errors import GatewayError, InvalidRequest
from portkey_mw.limits.periods import budget_period
from portkey_mw.limits.results import BudgetState
from portkey_mw.limits.subject import Subject
from portkey_mw.spend.subjects import api_key_limits, virtual_key_limits
from portkey_mw.store.records import ApiKey, VirtualKey

#: The status a detail read shows while the record's budget is exhausted (Portkey's).
EXHAUSTED = "exhausted"


class NoBudget(InvalidRequest):
    """A reset of a record that has no budget (400)."""

    code = "no_budget"


class LimitsUnavailable(GatewayError):
    """The app serving the admin routes has no spend control (503)."""

    status = 503
    code = "limits_unavailable"


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``: whole seconds when the moment is one (period
    boundaries usually are: ``2030-02-01T00:00:00Z``), else milliseconds."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def spend_of(call: Call) -> SpendView:
    """The gateway's spend control.

    :raises LimitsUnavailable: the app has none.
    """
    spend = call.services.spend
    if spend is None:
        raise LimitsUnavailable("budgets and rate limits are not available in this app")
    return spend


# -- subjects --------------------------------------------------------------------------------


# -- the usage object -------------------------------------------------------------------------


def usage_object(
    subject: Subject, state: BudgetState | None, spend: SpendView, name: str | None = None
) -> dict[str, Any]:
    """What the usage routes answer for ``subject``: its budget in the current period
    (``state``; None without a budget) and its rate limits."""
    budget = subject.budget
    described: dict[str, Any] | None = None
    if budget is not None and state is not None:
        described = {
            "type": budget.type,
            "credit_limit": budget.credit_limit,
            "used": state.used,
            "remaining": state.remaining,
            "alert_threshold": budget.alert_threshold,
            "exhausted": state.exhausted,
            "period_start": iso(state.period_start),
            "next_reset": iso(state.next_reset),
            "periodic_reset": budget.periodic_reset,
            "periodic_reset_days": budget.periodic_reset_days,
            "description": budget.describe(),
        }
    backend = spend.backend
    return {
        "object": "usage",
        "subject": subject.key,
        "kind": subject.kind,
        "ref": subject.ref,
        "name": name if name is not None else subject.ref,
        "owner": subject.owner,
        "budget": described,
        "rate_limits": [
            {
                "type": limit.type,
                "unit": limit.unit,
                "value": limit.value,
                "description": limit.describe(),
            }
            for limit in subject.limits
        ],
        "backend": backend.name,
        "degraded": state.degraded if state is not None else backend.degraded,
    }


async def read_usage(spend: SpendView, subject: Subject, name: str | None = None) -> dict[str, Any]:
    """``subject``'s usage object, its budget read from the backend (once)."""
    state = await spend.usage(subject) if subject.budget is not None else None
    return usage_object(subject, state, spend, name)


async def reset_usage(
    spend: SpendView, subject: Subject, name: str | None = None
) -> dict[str, Any]:
    """Start ``subject``'s budget period over; its usage object after the reset.

    :raises NoBudget: it has no budget.
    """
    if subject.budget is None:
        raise NoBudget(f"{subject.owner} has no budget (usage_limits) to reset")
    state = await spend.reset(subject)
    return usage_object(subject, state, spend, name)


# -- what record reads and updates add ----------------------------------------------------------


def _subject(spend: SpendView, record: ApiKey | VirtualKey) -> Subject | None:
    try:
        subject = (
            api_key_limits(record) if isinstance(record, ApiKey) else virtual_key_limits(record)
        )
        return None if subject.empty else subject
    except GatewayError:
        # limits the limits layer cannot read: the read still shows the record as stored
        # (its requests are refused 503, naming it)
        return None


async def add_to_detail(
    spend: SpendView | None, body: dict[str, Any], record: ApiKey | VirtualKey
) -> None:
    """A detail read: ``status: exhausted`` while the budget is (an active record only: a
    disabled or revoked one says so first) and ``usage_limits.next_usage_reset_at``."""
    subject = _subject(spend, record) if spend is not None else None
    if spend is None or subject is None or subject.budget is None:
        return
    state = await spend.usage(subject)
    if state.exhausted and body.get("status") == "active":
        body["status"] = EXHAUSTED
    if isinstance(body.get("usage_limits"), dict):
        body["usage_limits"]["next_usage_reset_at"] = iso(state.next_reset)


def add_to_listed(
    spend: SpendView | None, body: dict[str, Any], record: ApiKey | VirtualKey, now: float
) -> None:
    """A list item: ``usage_limits.next_usage_reset_at`` only, worked out from the
    budget's period (no backend read)."""
    subject = _subject(spend, record) if spend is not None else None
    if subject is None or subject.budget is None or not isinstance(body.get("usage_limits"), dict):
        return
    body["usage_limits"]["next_usage_reset_at"] = iso(budget_period(subject.budget, now).end_at)


async def reset_after_update(spend: SpendView | None, record: ApiKey | VirtualKey) -> str | None:
    """``reset_usage: true`` in an update: the updated record's budget starts over. The
    update is done by then, so what cannot be reset is a warning, not an error."""
    if spend is None:
        return "reset_usage was ignored: budgets are not available in this app"
    subject = _subject(spend, record)
    if subject is None or subject.budget is None:
        return "reset_usage was ignored: the record has no budget (usage_limits)"
    await spend.reset(subject)
    return None

"""Budget alerts: one log event, and the operator's webhook, per crossing per period.

The backends report ``alert_crossed`` and ``exhausted_now`` on exactly one charge per
period (across replicas sharing Redis); this module turns each into a
``budget.alert_threshold`` or ``budget.exhausted`` log event and, when
``limits.alert_webhook`` is set, a JSON POST to it. The POST runs in a task of its own:
no request waits for it, and one that fails is logged, not retried (the log event is the
record).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import structlog

from portkey_mw.auth.outbound import Destination
from portkey_mw.limits.results import BudgetState
from portkey_mw.limits.subject import Subject
from portkey_mw.redact import redact_url
from portkey_mw.transport import Transport, UpstreamRequest

log = structlog.get_logger("portkey_mw.spend")

#: seconds the webhook has to answer
WEBHOOK_TIMEOUT = 5.0
#: most webhook calls in flight; past it an alert is only logged
MAX_PENDING = 64


def _iso(state_time: Any) -> str | None:
    return state_time.strftime("%Y-%m-%dT%H:%M:%SZ") if state_time is not None else None


def alert_body(event: str, subject: Subject, state: BudgetState) -> dict[str, Any]:
    """What the log event and the webhook carry (names and numbers, never a key)."""
    return {
        "event": event,
        "subject": subject.key,
        "kind": subject.kind,
        "ref": subject.ref,
        "owner": subject.owner,
        "type": state.type,
        "used": state.used,
        "credit_limit": state.limit,
        "alert_threshold": state.alert_threshold,
        "period_start": _iso(state.period_start),
        "next_reset": _iso(state.next_reset),
        "at": time.time(),
    }


class Alerts:
    """Sends budget alerts.

    :param webhook: the operator's URL (``limits.alert_webhook``), or None.
    :param transport: the gateway's upstream transport (its outbound policy applies, as
        to a custom host the operator set: loopback allowed, private ranges only when
        ``outbound.allow`` lists them).
    """

    def __init__(self, webhook: str | None, transport: Transport | None) -> None:
        self.webhook = webhook
        self.transport = transport
        self._pending: set[asyncio.Task[None]] = set()
        #: alerts sent (for the admin state and tests)
        self.sent = 0
        self.failed = 0

    def after_charge(self, subject: Subject, state: BudgetState) -> None:
        """Report what ``state`` says this charge crossed (usually nothing)."""
        if state.alert_crossed:
            self._raise("budget.alert_threshold", subject, state)
        if state.exhausted_now:
            self._raise("budget.exhausted", subject, state)

    def _raise(self, event: str, subject: Subject, state: BudgetState) -> None:
        body = alert_body(event, subject, state)
        log.warning(event, **{k: v for k, v in body.items() if k != "event"})
        if self.webhook is None or self.transport is None:
            return
        if len(self._pending) >= MAX_PENDING:
            log.warning("budget alert webhook backlog full: alert only logged", alert=event)
            return
        task = asyncio.get_running_loop().create_task(self._post(body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, body: dict[str, Any]) -> None:
        assert self.webhook is not None and self.transport is not None
        request = UpstreamRequest(
            "POST",
            self.webhook,
            headers={"content-type": "application/json", "user-agent": "portkey-mw"},
            body=orjson.dumps(body),
            timeout=WEBHOOK_TIMEOUT,
            destination=Destination.PROVIDER,
            max_body=64 * 1024,
        )
        try:
            response = await self.transport.send(request)
            try:
                status = response.status
            finally:
                await response.aclose()
        except Exception as exc:
            self.failed += 1
            log.warning(
                "budget alert webhook failed",
                url=redact_url(self.webhook),
                error=type(exc).__name__,
            )
            return
        if status >= 400:
            self.failed += 1
            log.warning("budget alert webhook refused", url=redact_url(self.webhook), status=status)
        else:
            self.sent += 1

    async def aclose(self) -> None:
        """Wait for the webhook calls in flight (bounded by their timeout)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

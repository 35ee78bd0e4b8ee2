"""Running hooks: checks with timeouts, verdicts, transforms, and Portkey's result shapes.

Within a hook, checks run concurrently (each sees the same input) unless the hook is
``sequential`` or a mutator, when each sees the text the previous one rewrote. Hooks of one
phase run concurrently; their rewrites are applied in config order. A check that raises,
times out or answers something other than a :class:`GuardrailVerdict` is *errored*: it
does not fail its hook unless the check or hook sets ``fail_on_error``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from portkey_mw.guardrails.api import GuardrailInput, GuardrailVerdict
from portkey_mw.guardrails.spec import CheckSpec, HookSpec

log = structlog.get_logger("portkey_mw.guardrails")


@dataclass(slots=True)
class CheckResult:
    """One check's outcome, as reported in ``hook_results``."""

    id: str
    verdict: bool
    data: dict[str, Any]
    explanation: str | None
    execution_time: float  # milliseconds
    created_at: str
    transformed: bool = False
    error: dict[str, str] | None = None
    fail_on_error: bool = False

    @property
    def counts_as_passed(self) -> bool:
        """Passed, or errored without ``fail_on_error``."""
        return self.verdict or (self.error is not None and not self.fail_on_error)

    def to_dict(self, *, with_data: bool = True) -> dict[str, Any]:
        """Portkey's check-result object.

        :param with_data: include the check's ``data``, which may quote the text under
            check (a match, an excerpt); the request log leaves it out.
        """
        data = self.data if with_data else {}
        result: dict[str, Any] = {
            "verdict": self.verdict,
            "id": self.id,
            "data": {**data, "explanation": self.explanation} if self.explanation else data or None,
            "transformed": self.transformed,
            "execution_time": round(self.execution_time, 3),
            "created_at": self.created_at,
        }
        if self.error is not None:
            result["error"] = self.error
            result["fail_on_error"] = self.fail_on_error
        return result


@dataclass(slots=True)
class HookResult:
    """One hook's outcome, as reported in ``hook_results``."""

    id: str
    verdict: bool
    deny: bool
    run_async: bool
    type: str
    checks: list[CheckResult]
    execution_time: float
    created_at: str
    feedback: dict[str, Any] | None = None
    #: the rewrites the hook's checks made (texts, whole request, whole response)
    texts: list[str] | None = field(default=None, repr=False)
    request: dict[str, Any] | None = field(default=None, repr=False)
    response: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def transformed(self) -> bool:
        """Whether any check rewrote anything."""
        return any(check.transformed for check in self.checks)

    def to_dict(self, *, with_data: bool = True) -> dict[str, Any]:
        """Portkey's hook-result object (``with_data``: see :meth:`CheckResult.to_dict`)."""
        return {
            "verdict": self.verdict,
            "id": self.id,
            "transformed": self.transformed,
            "checks": [check.to_dict(with_data=with_data) for check in self.checks],
            "feedback": self.feedback,
            "execution_time": round(self.execution_time, 3),
            "async": self.run_async,
            "type": self.type,
            "created_at": self.created_at,
            "deny": self.deny,
        }


@dataclass(slots=True)
class Outcome:
    """The synchronous hooks of one phase, run: verdicts and the rewrites to apply."""

    results: list[HookResult] = field(default_factory=list)
    #: hooks started with ``async: true``; awaited after the response, for the log
    pending: list[asyncio.Task[HookResult]] = field(default_factory=list)
    texts: list[str] | None = None
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None

    @property
    def denied(self) -> bool:
        """A ``deny`` hook failed: the request (or response) must not go through."""
        return any(result.deny for result in self.results)

    @property
    def failed(self) -> bool:
        """Some hook failed (a 200 becomes a 246 when nothing denied)."""
        return any(not result.verdict for result in self.results)


async def run_phase(
    hooks: Sequence[HookSpec],
    subject: GuardrailInput,
    *,
    record: Callable[[CheckResult], None] | None = None,
) -> Outcome:
    """Run ``hooks`` on ``subject``: synchronous ones now, asynchronous ones as tasks."""
    outcome = Outcome()
    sync_hooks = [hook for hook in hooks if not hook.run_async]
    for hook in hooks:
        if hook.run_async:
            task = asyncio.create_task(run_hook(hook, subject, record), name=f"guardrail {hook.id}")
            outcome.pending.append(task)
    if not sync_hooks:
        return outcome
    outcome.results = list(
        await asyncio.gather(*(run_hook(hook, subject, record) for hook in sync_hooks))
    )
    for result in outcome.results:  # config order: the last rewrite of a part wins
        if result.texts is not None:
            outcome.texts = result.texts
        if result.request is not None:
            outcome.request = result.request
        if result.response is not None:
            outcome.response = result.response
    return outcome


async def run_hook(
    hook: HookSpec,
    subject: GuardrailInput,
    record: Callable[[CheckResult], None] | None = None,
) -> HookResult:
    """Run one hook's checks and decide its verdict."""
    started, created = time.perf_counter(), _now()
    results: list[CheckResult] = []
    texts = request = response = None
    if hook.sequential:
        current = subject
        for check in hook.checks:
            result, verdict = await _run_check(check, current, hook.timeout)
            results.append(result)
            if verdict is not None and verdict.texts is not None:
                texts = verdict.texts
                current = replace(current, texts=verdict.texts)
            request, response = _whole(verdict, request, response)
    else:
        ran = await asyncio.gather(*(_run_check(c, subject, hook.timeout) for c in hook.checks))
        for result, verdict in ran:
            results.append(result)
            if verdict is not None and verdict.texts is not None:
                texts = verdict.texts
            request, response = _whole(verdict, request, response)
    if record is not None:
        for result in results:
            record(result)
    verdict_ok = all(result.counts_as_passed for result in results)
    return HookResult(
        id=hook.id,
        verdict=verdict_ok,
        deny=hook.deny and not verdict_ok,
        run_async=hook.run_async,
        type=hook.type,
        checks=results,
        execution_time=(time.perf_counter() - started) * 1000,
        created_at=created,
        feedback=_feedback(hook, results),
        texts=texts,
        request=request,
        response=response,
    )


def _whole(
    verdict: GuardrailVerdict | None,
    request: dict[str, Any] | None,
    response: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if verdict is None:
        return request, response
    return verdict.request or request, verdict.response or response


async def _run_check(
    check: CheckSpec,
    subject: GuardrailInput,
    timeout: float,  # noqa: ASYNC109 - the hook's budget per check, from its config
) -> tuple[CheckResult, GuardrailVerdict | None]:
    started, created = time.perf_counter(), _now()

    def errored(name: str, message: str) -> tuple[CheckResult, None]:
        log.warning("guardrail check errored", check=check.id, error=message)
        return (
            CheckResult(
                id=check.id,
                verdict=False,
                data={},
                explanation=message,
                execution_time=(time.perf_counter() - started) * 1000,
                created_at=created,
                error={"name": name, "message": message},
                fail_on_error=check.fail_on_error,
            ),
            None,
        )

    try:
        async with asyncio.timeout(timeout):
            verdict = await check.guardrail.check(subject, check.params)
    except TimeoutError:
        return errored("TimeoutError", f"the check took longer than {timeout * 1000:.0f} ms")
    except Exception as exc:
        return errored(type(exc).__name__, str(exc) or type(exc).__name__)
    if not isinstance(verdict, GuardrailVerdict):
        return errored("InvalidVerdict", f"the check returned {type(verdict).__name__}")
    if verdict.texts is not None and (
        not isinstance(verdict.texts, list)
        or not all(isinstance(text, str) for text in verdict.texts)
    ):
        return errored("InvalidVerdict", "the check's rewritten texts are not a list of strings")
    return (
        CheckResult(
            id=check.id,
            verdict=bool(verdict.passed),
            data=dict(verdict.data or {}),
            explanation=verdict.explanation,
            execution_time=(time.perf_counter() - started) * 1000,
            created_at=created,
            transformed=verdict.transformed,
            fail_on_error=check.fail_on_error,
        ),
        verdict,
    )


def _feedback(hook: HookSpec, results: list[CheckResult]) -> dict[str, Any] | None:
    passed = all(result.counts_as_passed for result in results)
    chosen: Mapping[str, Any] | None = hook.on_success if passed else hook.on_fail
    feedback = (chosen or {}).get("feedback")
    if not isinstance(feedback, dict):
        return None

    def ids(pick: Callable[[CheckResult], bool]) -> str:
        return ", ".join(result.id for result in results if pick(result))

    return {
        "value": feedback.get("value"),
        "weight": feedback.get("weight"),
        "metadata": {
            **(feedback.get("metadata") or {}),
            "successfulChecks": ids(lambda r: r.verdict),
            "failedChecks": ids(lambda r: not r.verdict and r.error is None),
            "erroredChecks": ids(lambda r: r.error is not None),
        },
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class CheckStats:
    """Running totals for one check id."""

    passed: int = 0
    failed: int = 0
    errored: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, with the mean latency."""
        runs = self.passed + self.failed + self.errored
        return {
            "passed": self.passed,
            "failed": self.failed,
            "errored": self.errored,
            "mean_ms": round(self.total_ms / runs, 3) if runs else None,
            "max_ms": round(self.max_ms, 3),
        }


class GuardrailStats:
    """Passed / failed / errored counts and latency per check id, since start."""

    def __init__(self) -> None:
        self.checks: dict[str, CheckStats] = {}

    def record(self, result: CheckResult) -> None:
        """Count one check result."""
        stats = self.checks.setdefault(result.id, CheckStats())
        if result.error is not None:
            stats.errored += 1
        elif result.verdict:
            stats.passed += 1
        else:
            stats.failed += 1
        stats.total_ms += result.execution_time
        stats.max_ms = max(stats.max_ms, result.execution_time)

    def to_dict(self) -> dict[str, Any]:
        """``{"checks": {id: {...}}}``."""
        return {"checks": {name: s.to_dict() for name, s in sorted(self.checks.items())}}

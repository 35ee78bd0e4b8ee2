"""Guardrails in one request's life: before the call, on the answer, on a stream.

When every target of the plan carries the same hooks (the common case: hooks set at the top
of the config and inherited), input guardrails run once, before the cache lookup, so a
cached answer is never served to a request they would have denied, and output guardrails
run on whatever answers, cached or not. When targets carry different hooks, each target's
input guardrails run before that target is called, and the cache is not consulted.

Outcomes follow Portkey: a failed ``deny`` hook answers 446 with ``hook_results`` (before
the call, the provider is never called); any other failed hook turns a 200 into a 246 and
keeps the body; rewrites replace the request's or the answer's text. Hooks with ``async:
true`` run beside the request and are awaited only for its log event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from portkey_mw.context import GatewayResponse, RequestContext
from portkey_mw.errors import RequestDenied
from portkey_mw.guardrails.api import GuardrailInput, Phase
from portkey_mw.guardrails.runner import GuardrailStats, HookResult, Outcome, run_phase
from portkey_mw.guardrails.spec import NO_HOOKS, HookSet, HookSpec
from portkey_mw.guardrails.subject import (
    request_texts,
    request_type,
    response_texts,
    with_request_texts,
    with_response_texts,
)
from portkey_mw.routing.plan import PlanNode, ResolvedTarget, plan_leaves
from portkey_mw.streaming import DONE_EVENT, listen, split_done

if TYPE_CHECKING:
    from portkey_mw.services import GatewayServices

DENIED_MESSAGE = (
    "The guardrail checks defined in the config failed. You can find more information in "
    "the `hook_results` object."
)
#: seconds the log event waits for asynchronous hooks (their checks have timeouts too)
ASYNC_WAIT = 30.0


class GuardrailDenied(RequestDenied):
    """A ``deny`` hook failed: 446, with every hook's result beside the error."""

    code = "hooks_failed"

    def __init__(self, hook_results: dict[str, Any]) -> None:
        super().__init__(DENIED_MESSAGE)
        self.body_extra["hook_results"] = hook_results


class RequestGuardrails:
    """The guardrails of one request and what they decided so far."""

    def __init__(self, plan: PlanNode, gateway: GatewayServices, stats: GuardrailStats) -> None:
        #: the hooks every target shares, or ``None`` when targets differ (the resolver
        #: worked that out once per config)
        self.shared: HookSet | None = plan.guardrails
        #: targets by path, to find the answering one's hooks when they differ
        self.leaves = {} if self.shared is not None else {t.path: t for t in plan_leaves(plan)}
        self.gateway = gateway
        self.stats = stats
        self.before: list[HookResult] = []
        self.after: list[HookResult] = []
        #: per-target input results (reported, but only the answering target's count)
        self._by_target: dict[str, list[HookResult]] = {}
        self.pending: list[asyncio.Task[HookResult]] = []
        #: the calls out (webhooks, validUrls) this request's checks may still make
        self.fetcher = gateway.fetcher.for_request(
            gateway.settings.outbound.max_fetches_per_request
        )

    @staticmethod
    def for_plan(
        plan: PlanNode, gateway: GatewayServices, stats: GuardrailStats
    ) -> RequestGuardrails | None:
        """The request's guardrails, or ``None`` when no target has any."""
        if plan.guardrails is not None and not plan.guardrails:
            return None  # the usual case, decided without allocating
        return RequestGuardrails(plan, gateway, stats)

    def failed(self, ctx: RequestContext) -> bool:
        """Some synchronous hook that applies to the answer failed: shared input hooks, the
        answering target's own, and output hooks (targets that were denied and fallen back
        from do not count)."""
        counted = [r for r in self.before if not any(r in rs for rs in self._by_target.values())]
        counted += self._by_target.get(ctx.target_index or "", [])
        return any(not result.verdict for result in (*counted, *self.after))

    def results(self, *, with_data: bool = True) -> dict[str, Any]:
        """Portkey's ``hook_results`` object. The log takes it ``with_data=False``: a check's
        data may quote the request or response text, which the log never carries."""
        return {
            "before_request_hooks": [r.to_dict(with_data=with_data) for r in self.before],
            "after_request_hooks": [r.to_dict(with_data=with_data) for r in self.after],
        }

    # -- before the call ----------------------------------------------------------------

    async def check_request(self, ctx: RequestContext, hooks: Sequence[HookSpec]) -> None:
        """Run input hooks; rewrite the request or raise :class:`GuardrailDenied`."""
        outcome = await self._run_input(ctx, hooks)
        self._apply_input(ctx, outcome)

    async def before_target(self, ctx: RequestContext, target: ResolvedTarget) -> None:
        """Per-target input hooks (only when targets carry different hooks)."""
        if self.shared is None:
            outcome = await self._run_input(ctx, target.guardrails.before)
            self._by_target[target.path] = outcome.results
            self._apply_input(ctx, outcome)

    async def _run_input(self, ctx: RequestContext, hooks: Sequence[HookSpec]) -> Outcome:
        if not hooks or ctx.body is None:
            return Outcome()
        texts = request_texts(ctx.endpoint, ctx.body)
        subject = self._subject(ctx, "before", texts, streaming=ctx.stream)
        outcome = await run_phase(hooks, subject, record=self.stats.record)
        self.before.extend(outcome.results)
        self.pending.extend(outcome.pending)
        return outcome

    def _subject(
        self, ctx: RequestContext, phase: Phase, texts: list[str], **extra: Any
    ) -> GuardrailInput:
        return GuardrailInput(
            phase=phase,
            texts=texts,
            request=ctx.body or {},
            request_type=request_type(ctx.endpoint, ctx.state.get("inbound_format")),
            metadata=ctx.metadata,
            ctx=ctx,
            gateway=self.gateway,
            fetcher=self.fetcher,
            **extra,
        )

    def _apply_input(self, ctx: RequestContext, outcome: Outcome) -> None:
        if outcome.denied:
            raise GuardrailDenied(self.results())
        if ctx.body is None:
            return
        body = ctx.body
        if outcome.request is not None:
            body = outcome.request
        if outcome.texts is not None:
            body = with_request_texts(ctx.endpoint, body, outcome.texts)
        if body is not ctx.body:
            ctx.set_body(body)

    # -- on the answer ------------------------------------------------------------------

    def output_hooks(self, ctx: RequestContext) -> HookSet:
        """The hooks of the target that answered (the shared ones for a cache hit)."""
        if self.shared is not None:
            return self.shared
        leaf = self.leaves.get(ctx.target_index or "")
        return leaf.guardrails if leaf is not None else NO_HOOKS

    async def check_response(
        self, ctx: RequestContext, response: GatewayResponse
    ) -> GatewayResponse:
        """Run output hooks on a complete answer; mark, rewrite or deny it."""
        hooks = self.output_hooks(ctx).after
        body = _json_body(response) if response.status == 200 else None
        if hooks and body is not None:
            subject = self._subject(ctx, "after", response_texts(body), response=body)
            outcome = await run_phase(hooks, subject, record=self.stats.record)
            self.after.extend(outcome.results)
            self.pending.extend(outcome.pending)
            if outcome.denied:
                await response.aclose()
                raise GuardrailDenied(self.results())
            body = _rewritten(body, outcome)
        return self._finish(ctx, response, body)

    def _finish(
        self, ctx: RequestContext, response: GatewayResponse, body: dict[str, Any] | None
    ) -> GatewayResponse:
        if response.status != 200:
            return response
        status = 246 if self.failed(ctx) else 200
        if body is None:
            body = _json_body(response)
        if body is None or not isinstance(body, dict):
            response.status = status
            return response
        body = {**body, "hook_results": self.results()}
        return GatewayResponse(status, orjson.dumps(body), headers=dict(response.headers))

    # -- on a stream ----------------------------------------------------------------------

    def guard_stream(self, ctx: RequestContext, response: GatewayResponse) -> GatewayResponse:
        """Mark a streamed answer (246) and follow it with the output hooks."""
        if response.status == 200 and self.failed(ctx):
            response.status = 246
        hooks = self.output_hooks(ctx)
        if hooks.after and response.stream is not None and response.status in (200, 246):
            text = _StreamText()
            listen(response, text.take)  # the chunks as the router's check parsed them
            response.stream = self._guarded(ctx, response.stream, hooks, text)
        return response

    async def _guarded(
        self,
        ctx: RequestContext,
        chunks: AsyncIterator[bytes],
        hooks: HookSet,
        text: _StreamText,
    ) -> AsyncIterator[bytes]:
        """Relay the stream while its text so far passes; stop it with an error event when
        a ``deny`` hook fails. Incremental checks run after every content chunk, the rest on
        the complete text, before ``[DONE]`` is let through."""

        async def judge(final: bool) -> None:
            texts = [text.parts[i] for i in sorted(text.parts)]
            subject = self._subject(ctx, "after", texts, streaming=True, final=final)
            outcome = await run_phase(
                hooks.after if final else hooks.after_incremental,
                subject,
                record=self.stats.record,
            )
            if final or outcome.denied:
                self.after.extend(outcome.results)
            self.pending.extend(outcome.pending)
            if outcome.denied:
                raise GuardrailDenied(self.results())

        done = False
        try:
            async for raw in chunks:  # whole events, already parsed for ``text``
                out, done = split_done(raw)
                if text.grew and hooks.after_incremental:
                    text.grew = False
                    await judge(final=False)
                if out:
                    yield out
                if done:
                    break
            await judge(final=True)
            if done:
                yield DONE_EVENT
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def settle(self) -> list[dict[str, Any]]:
        """Wait for the asynchronous hooks; their results for the log event (without data,
        as :meth:`results` gives them to the log)."""
        if not self.pending:
            return []
        done, running = await asyncio.wait(self.pending, timeout=ASYNC_WAIT)
        for task in running:
            task.cancel()
        return [task.result().to_dict(with_data=False) for task in done if task.exception() is None]


class _StreamText:
    """The text of a stream so far, per choice, from its parsed chunks."""

    __slots__ = ("grew", "parts")

    def __init__(self) -> None:
        self.parts: dict[int, str] = {}
        #: content arrived since the incremental checks last ran
        self.grew = False

    def take(self, chunk: dict[str, Any]) -> None:
        """Add a chunk's content (a listener of the stream's chunks). The chunk is any JSON
        object the stream check let through: what is not an OpenAI chunk's is skipped."""
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
            if text is None:
                text = choice.get("text")
            if isinstance(text, str) and text:
                index = choice.get("index")
                index = index if type(index) is int else 0
                self.parts[index] = self.parts.get(index, "") + text
                self.grew = True


def _json_body(response: GatewayResponse) -> Any:
    # The response's own parse: once per response, and within the gateway's JSON depth.
    if response.stream is not None or not response.body:
        return None
    return response.json()


def _rewritten(body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    if outcome.response is not None:
        body = outcome.response
    if outcome.texts is not None:
        body = with_response_texts(body, outcome.texts)
    return body

"""The guardrail plugin API: what a check receives, and what it answers.

A third party subclasses :class:`Guardrail`, registers instances from a
``register_guardrails`` hook, and configs reference it by ``id`` with parameters. The core
calls :meth:`Guardrail.check` with a :class:`GuardrailInput` -- the request, and after the
call the response (or, for a stream, the text so far) -- and gets a :class:`GuardrailVerdict`
back: passed or not, why, details, and optionally rewritten text or JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from portkey_mw.context import RequestContext
    from portkey_mw.fetch import Fetcher
    from portkey_mw.services import GatewayServices

Phase = Literal["before", "after"]
#: how a check can follow a streamed response: on the text so far after every chunk, or
#: only on the complete text
StreamMode = Literal["incremental", "final"]


@dataclass(slots=True)
class GuardrailInput:
    """What a check looks at.

    :param phase: ``before`` the provider is called (the request) or ``after`` (the response).
    :param texts: the text under check, as parts: the last message of a chat request (one
        part per text part), a completion's prompt, an embedding's inputs; after the call,
        the answer's content. For a stream, the text received so far.
    :param request: the request body, in OpenAI's format.
    :param response: the response body (``after``, not for streams), in OpenAI's format.
    :param request_type: Portkey's name for the endpoint: ``chatComplete``, ``complete``,
        ``embed``, ``messages``, ``imageGenerate``...
    :param metadata: the request's ``x-portkey-metadata``.
    :param streaming: the text comes from a stream still being received.
    :param final: for a stream, whether the text is complete.
    :param ctx: the request, for checks that need more (headers, gateway state).
    :param gateway: the gateway running the check, for checks that call it (moderation
        goes through the gateway's own routing to a provider's moderation endpoint).
    :param fetcher: the gateway's client for URLs (webhooks, links to check): it applies
        the operator's outbound policy, so a check must call out through it and nothing
        else.
    """

    phase: Phase
    texts: list[str]
    request: Mapping[str, Any]
    response: Mapping[str, Any] | None = None
    request_type: str = "chatComplete"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    streaming: bool = False
    final: bool = True
    ctx: RequestContext | None = None
    gateway: GatewayServices | None = None
    fetcher: Fetcher | None = None

    @property
    def text(self) -> str:
        """The parts joined by newlines."""
        return "\n".join(part for part in self.texts if part)

    @property
    def model(self) -> str | None:
        """The model the request names."""
        model = self.request.get("model")
        return model if isinstance(model, str) else None


@dataclass(slots=True)
class GuardrailVerdict:
    """What a check decided.

    :param passed: whether the check passed.
    :param explanation: why, in words, for logs and ``hook_results``; it is logged, so it
        must not quote the text under check.
    :param data: details for ``hook_results`` (JSON-ready); it may quote the text (the
        client sees it), and the request log leaves it out.
    :param texts: rewritten text parts, one per part of :attr:`GuardrailInput.texts`
        (e.g. with personal data redacted); the core puts them back where they came from.
    :param request: a whole replacement request body (``before``).
    :param response: a whole replacement response body (``after``).
    """

    passed: bool
    explanation: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    texts: list[str] | None = None
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None

    @property
    def transformed(self) -> bool:
        """Whether the check rewrote anything."""
        return self.texts is not None or self.request is not None or self.response is not None


class Guardrail(ABC):
    """A check run on a request (``before``) or a response (``after``).

    Configs reference it by :attr:`id` (e.g. ``default.regexMatch``) with parameters.
    """

    id: ClassVar[str]
    #: how the check follows a stream (see :data:`StreamMode`); ``final`` is always safe
    stream_mode: ClassVar[StreamMode] = "final"
    #: the phases it makes sense in; a config using it elsewhere is rejected
    phases: ClassVar[frozenset[str]] = frozenset({"before", "after"})
    #: the distribution that registered it (filled in by the core)
    plugin_name: str = ""

    def validate(self, params: Mapping[str, Any]) -> None:  # noqa: B027 - optional
        """Reject bad parameters when a config is loaded, by raising ``ValueError`` with a
        message naming the parameter (a regex that does not compile, a bad schema...)."""

    async def aclose(self) -> None:  # noqa: B027 - optional for checks holding nothing
        """Release what the check holds (HTTP clients...); called at gateway shutdown."""

    @abstractmethod
    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        """Judge ``subject`` with the config's ``params`` (credentials included, under
        ``params["credentials"]`` when the config gives them)."""

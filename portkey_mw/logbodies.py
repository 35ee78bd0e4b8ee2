"""Request and response bodies in the log record: whether a request keeps them, and how
they are rendered (decoded, redacted, capped).

The hot path only keeps references to bytes the gateway already holds (the body it read,
the body it sent) and, for a stream whose bodies are kept, the events it relays up to the
cap. Decoding, PII redaction and capping happen in :meth:`BodyPolicy.render`, which runs
when a sink asks for the record (in the log dispatcher's task).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from portkey_mw.bounds import json_too_deep
from portkey_mw.context import RequestContext

#: masks personal data in a text (the PII guardrail's detector)
Redactor = Callable[[str], str]

#: what ends a body cut at ``logging.max_body_bytes``
TRUNCATED = "…[truncated]"
#: bytes read past the cap before redaction, so that a finding the cap cuts in two is still
#: recognised (and masked) whole
REDACTION_MARGIN = 512


@dataclass(frozen=True, slots=True)
class BodyPolicy:
    """The server's ``logging`` choices for bodies, applied per request.

    :param keep: the server's ``logging.bodies``.
    :param max_bytes: ``logging.max_body_bytes``: each body is cut there.
    :param redactor: masks PII in kept bodies (``logging.redact_pii``); ``None``: none.
    """

    keep: bool = False
    max_bytes: int = 65_536
    redactor: Redactor | None = None

    def enabled(self, ctx: RequestContext) -> bool:
        """Whether this request's record keeps its bodies: ``x-portkey-debug: false`` turns
        them off; otherwise the API key's ``defaults.log_bodies`` wins over the server."""
        debug = ctx.headers.get("x-portkey-debug")
        if debug is not None and debug.strip().lower() == "false":
            return False
        api_key = ctx.api_key
        if api_key is not None:
            own = api_key.defaults.get("log_bodies")
            if isinstance(own, bool):
                return own
        return self.keep

    def render(self, data: bytes | None) -> Any:
        """A body for the record: the JSON value when it is JSON within the cap, else text
        (cut texts end with :data:`TRUNCATED`); PII masked when the policy says so."""
        if not data:
            return None
        limit = self.max_bytes
        cut = len(data) > limit
        redactor = self.redactor
        if not cut and data.lstrip()[:1] in (b"{", b"["):
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
            else:
                # Deeper than the gateway accepts anywhere: kept as text (sinks write the
                # record out again, and orjson has a depth limit).
                if not json_too_deep(data, value):
                    return _redact_value(value, redactor) if redactor is not None else value
        head = data[: limit + REDACTION_MARGIN] if redactor is not None else data[:limit]
        text = head.decode("utf-8", "replace")
        if redactor is not None:
            text = redactor(text)
        if not cut:
            return text
        # (the cut may fall inside a character: the half left is dropped)
        return text.encode("utf-8")[:limit].decode("utf-8", "ignore") + TRUNCATED


def _redact_value(value: Any, redactor: Redactor) -> Any:
    """``value`` with every string in it masked (keys are the API's names, left as they
    are). JSON from the gateway's own parse is depth-bounded, so recursion is safe."""
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {key: _redact_value(item, redactor) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_value(item, redactor) for item in value]
    return value


class StreamCapture:
    """Keeps the bytes of a stream as they are sent, up to ``limit`` (and one chunk more,
    so a cut stream is known to be cut). Only streams whose bodies are kept are wrapped."""

    __slots__ = ("_chunks", "_size", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        """Keep ``chunk`` if the cap is not reached yet."""
        if self._size <= self.limit:
            self._chunks.append(chunk)
            self._size += len(chunk)

    async def wrap(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """``chunks`` unchanged, each kept on its way."""
        async for chunk in chunks:
            self.add(chunk)
            yield chunk

    @property
    def data(self) -> bytes:
        """What was kept."""
        return b"".join(self._chunks)

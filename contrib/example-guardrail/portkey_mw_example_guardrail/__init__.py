"""An example guardrail distribution for portkey-mw: ``example.bannedTopics``.

Fails text that mentions one of the config's ``topics``; with ``mask: true`` it masks them
instead and passes. Use it from a routing config::

    {"provider": "openai",
     "input_guardrails": [{"example.bannedTopics": {"topics": ["merger"]}, "deny": true}]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from portkey_mw import Guardrail, GuardrailInput, GuardrailVerdict, hookimpl
from portkey_mw.guardrails.api import StreamMode


class BannedTopics(Guardrail):
    """Fails text that mentions a banned topic; with ``mask``, masks it and passes."""

    id: ClassVar[str] = "example.bannedTopics"
    stream_mode: ClassVar[StreamMode] = "incremental"  # it can judge a stream's text so far

    def validate(self, params: Mapping[str, Any]) -> None:
        topics = params.get("topics")
        if not isinstance(topics, list) or not topics:
            raise ValueError("'topics' must be a non-empty list")

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        topics = [str(t).lower() for t in params["topics"]]
        found = [t for t in topics if t in subject.text.lower()]
        if found and params.get("mask") and not subject.streaming:
            masked = []
            for part in subject.texts:
                for topic in found:
                    part = part.replace(topic, "*" * len(topic))
                masked.append(part)
            return GuardrailVerdict(True, f"masked {found}", {"found": found}, texts=masked)
        return GuardrailVerdict(not found, f"mentions {found}" if found else None, {"found": found})


@hookimpl
def register_guardrails(register: Callable[[Guardrail], None]) -> None:
    """Register the banned-topics check."""
    register(BannedTopics())

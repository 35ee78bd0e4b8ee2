"""Regular expressions that configs supply: compiled by the ``regex`` library and matched
with a time limit.

Python's ``re`` cannot be interrupted, and a pattern with nested repetition (``^(a|aa)+$``)
takes exponential time on a short text: one request with such a pattern in its inline
config would stop the whole event loop for as long as the attacker likes. Every pattern a
config names -- guardrail rules, conditional ``$regex``, JSON-schema ``pattern`` -- goes
through here instead: the match gives up after :data:`MATCH_SECONDS`, which the caller
reports as a failed check or a refused request, never as a hang.
"""

from __future__ import annotations

from typing import Any

import regex
from regex import Match, Pattern

#: The longest one match of a config's pattern may run, in seconds.
MATCH_SECONDS = 0.05

__all__ = ["MATCH_SECONDS", "Pattern", "PatternTimeout", "compile_pattern", "search", "substitute"]


class PatternTimeout(Exception):
    """A config's pattern ran past :data:`MATCH_SECONDS` on a text."""

    def __init__(self, pattern: str) -> None:
        super().__init__(
            f"the pattern {pattern[:80]!r} took longer than {MATCH_SECONDS * 1000:g} ms to "
            "match (nested repetition?)"
        )


def compile_pattern(pattern: str, flags: int = 0) -> Pattern[str]:
    """``pattern`` compiled (``re``-compatible syntax); ``regex.error`` if it is not valid."""
    compiled: Pattern[str] = regex.compile(pattern, flags)
    return compiled


def search(pattern: Pattern[str] | str, text: str) -> Match[str] | None:
    """The first match of ``pattern`` in ``text``, within the time limit.

    :raises PatternTimeout: the match took too long.
    """
    compiled = compile_pattern(pattern) if isinstance(pattern, str) else pattern
    try:
        return compiled.search(text, timeout=MATCH_SECONDS)
    except TimeoutError:
        raise PatternTimeout(compiled.pattern) from None


def substitute(pattern: Pattern[str], replacement: str, text: str) -> tuple[str, int]:
    """``text`` with every match replaced by ``replacement`` (literally), and how many.

    :raises PatternTimeout: the replacement took too long.
    """
    try:
        result: tuple[str, int] = pattern.subn(lambda _: replacement, text, timeout=MATCH_SECONDS)
    except TimeoutError:
        raise PatternTimeout(pattern.pattern) from None
    return result


IGNORECASE: int = regex.IGNORECASE
MULTILINE: int = regex.MULTILINE
DOTALL: int = regex.DOTALL
error: Any = regex.error

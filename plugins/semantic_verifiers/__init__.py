"""The first-party semantic-cache verifiers: ``numbers``, ``negation``, ``direction``,
``time``, ``antonyms`` and ``entities`` (see docs/caching.md#verification).

Sentence embeddings score "flights from Denver to Boston" and "flights from Boston to
Denver" as near-identical; these checks read both questions and veto the hit when they
disagree on a number, unit, name, negation, direction, time or an opposite word. Each is
a few microseconds per pair, from the question's reading (:mod:`.analysis`, cached) and
WordNet's words (:mod:`.lexicon`, shipped derived, with WordNet's licence).
"""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.interfaces import SemanticVerifier

from .verifiers import (
    FIRST_PARTY,
    AntonymsVerifier,
    DirectionVerifier,
    EntitiesVerifier,
    NegationVerifier,
    NumbersVerifier,
    ReadingVerifier,
    TimeVerifier,
)

__all__ = [
    "FIRST_PARTY",
    "AntonymsVerifier",
    "DirectionVerifier",
    "EntitiesVerifier",
    "NegationVerifier",
    "NumbersVerifier",
    "ReadingVerifier",
    "TimeVerifier",
]


@hookimpl
def register_semantic_verifiers(
    register: Callable[[SemanticVerifier], None], settings: ServerSettings
) -> None:
    """Register the six first-party verifiers."""
    for verifier in FIRST_PARTY:
        register(verifier())

"""``default.promptInjection``: instruction-override patterns, and similarity to known
attacks with the local embedding model.

The text fails when one of the patterns matches (attempts to override, reveal or replace
the instructions), or when its meaning is at least ``threshold`` (default 0.6) similar to
one of the known attacks in ``data/injection_attacks.txt`` (plus any ``attacks`` the config
adds). ``patterns: false`` or ``similarity: false`` turn either half off; ``max_chars``
(1000) bounds the text compared by meaning. The attack list is embedded once per process.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import numpy as np

from portkey_mw.config.server import EmbeddingOptions
from portkey_mw.embedding import EmbeddingModel, shared_model
from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict
from portkey_mw.guardrails.spec import optional_number

DEFAULT_THRESHOLD = 0.6
#: characters of the text compared by meaning (the patterns read all of it)
DEFAULT_MAX_CHARS = 1000
PATTERNS = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\b(?:ignore|disregard|forget|override|bypass)\b.{0,40}\b(?:previous|prior|above|"
        r"earlier|all|your|the)\b.{0,20}\b(?:instructions?|prompts?|rules?|guidelines?|"
        r"directives?|policy|policies)\b",
        r"\b(?:reveal|show|print|repeat|output|tell me)\b.{0,40}\b(?:system|hidden|initial|"
        r"secret|original)\s+(?:prompt|message|instructions?)\b",
        r"\byou are (?:now|no longer)\b.{0,60}\b(?:DAN|unrestricted|jailbroken|without "
        r"(?:any )?(?:rules|restrictions|limits|filters))",
        r"\b(?:developer|god|jailbreak|DAN)\s+mode\b",
        r"\bdo anything now\b",
        r"</?\s*(?:system|im_start|im_end)\s*>|\[/?INST\]|<<SYS>>",
        r"\bnew (?:system )?instructions?\s*:",
    )
]


def known_attacks() -> list[str]:
    """The shipped attack prompts."""
    text = resources.files(__package__).joinpath("data/injection_attacks.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


class PromptInjection(Guardrail):
    """Fails text that tries to override, reveal or replace the model's instructions."""

    id: ClassVar[str] = "default.promptInjection"

    def __init__(self, embedding: EmbeddingOptions | None = None) -> None:
        self.embedding = embedding or EmbeddingOptions()
        self._matrices: dict[tuple[str, ...], Any] = {}
        self._lock = asyncio.Lock()

    def validate(self, params: Mapping[str, Any]) -> None:
        threshold = optional_number(params, "threshold")
        if threshold is not None and not 0 <= threshold <= 1:
            raise ValueError("'threshold' must be between 0 and 1")
        attacks = params.get("attacks", [])
        if not isinstance(attacks, list) or not all(isinstance(a, str) for a in attacks):
            raise ValueError("'attacks' must be a list of strings")

    @property
    def model(self) -> EmbeddingModel:
        """The process's embedding model."""
        return shared_model(self.embedding)

    async def _attack_matrix(self, extra: tuple[str, ...]) -> Any:
        async with self._lock:
            if extra not in self._matrices:
                attacks = known_attacks() + list(extra)
                await self.model.wait_ready()
                loop = asyncio.get_running_loop()
                vectors = await loop.run_in_executor(None, self.model.embed, attacks)
                self._matrices[extra] = (attacks, np.asarray(vectors, dtype=np.float32))
            return self._matrices[extra]

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        text = subject.text
        if params.get("patterns", True):
            matched = [p.pattern[:60] for p in PATTERNS if p.search(text)]
            if matched:
                return GuardrailVerdict(
                    False,
                    "the text tries to override or reveal the instructions",
                    {"matchedPatterns": len(matched), "method": "patterns"},
                )
        if not params.get("similarity", True) or not text.strip():
            return GuardrailVerdict(True, "no injection pattern found", {"method": "patterns"})
        threshold = optional_number(params, "threshold") or DEFAULT_THRESHOLD
        attacks, matrix = await self._attack_matrix(tuple(params.get("attacks", [])))
        # Encoding costs about a third of a millisecond per word on one core: bound it.
        limit = int(optional_number(params, "max_chars") or DEFAULT_MAX_CHARS)
        vector = np.asarray(await self.model.aembed(text[:limit]), dtype=np.float32)
        scores = matrix @ vector
        best = int(scores.argmax())
        similarity = float(scores[best])
        data = {"similarity": round(similarity, 4), "threshold": threshold, "method": "similarity"}
        if similarity >= threshold:
            data["closestAttack"] = attacks[best]
            return GuardrailVerdict(False, "the text resembles a known injection attack", data)
        return GuardrailVerdict(True, "no injection found", data)


CHECKS: tuple[type[Guardrail], ...] = (PromptInjection,)

"""Checks on the text itself: regex match and replace, contains, counts, case, endings.

Ids and parameter names are those of Portkey's ``default`` plugin, so its configs run
unchanged; ``not: true`` inverts a verdict where Portkey's check has it.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from portkey_mw import patterns
from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict, StreamMode
from portkey_mw.guardrails.spec import (
    compile_regex,
    operator_holds,
    optional_number,
    require,
    require_names,
    require_operator,
)

EXCERPT = 100
#: Words one ``default.contains`` check may look for.
MAX_WORDS = 256


def excerpt(text: str) -> str:
    """The first characters of ``text``, for ``hook_results``."""
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def inverted(params: Mapping[str, Any], verdict: bool) -> bool:
    """``verdict``, flipped when the check is configured with ``not: true``."""
    return verdict != bool(params.get("not", False))


class RegexMatch(Guardrail):
    """``default.regexMatch``: passes when ``rule`` matches the text (``not`` inverts)."""

    id: ClassVar[str] = "default.regexMatch"
    stream_mode: ClassVar[StreamMode] = "incremental"

    def validate(self, params: Mapping[str, Any]) -> None:
        compile_regex(params.get("rule"))

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        text = subject.text
        match = patterns.search(compile_regex(params.get("rule")), text)
        negate = bool(params.get("not", False))
        # A stream can only be judged early when a match is what fails it.
        if subject.streaming and not subject.final and not (match and negate):
            return GuardrailVerdict(True, "waiting for the complete text")
        passed = inverted(params, match is not None)
        return GuardrailVerdict(
            passed,
            f"the pattern {'matched' if match else 'did not match'}",
            {
                "regexPattern": params.get("rule"),
                "not": negate,
                "matchDetails": {"matchedText": match.group(0), "index": match.start()}
                if match
                else None,
                "textExcerpt": excerpt(text),
            },
        )


class RegexReplace(Guardrail):
    """``default.regexReplace``: replaces every match of ``rule`` by ``redactText``
    (default ``[REDACTED]``); fails only with ``failOnDetection`` and a match."""

    id: ClassVar[str] = "default.regexReplace"

    def validate(self, params: Mapping[str, Any]) -> None:
        compile_regex(params.get("rule"))
        if not isinstance(params.get("redactText", "[REDACTED]"), str):
            raise ValueError("'redactText' must be a string")

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        pattern = compile_regex(params.get("rule"))
        replacement = str(params.get("redactText", "[REDACTED]"))
        texts, found = [], 0
        for part in subject.texts:
            # A literal replacement: no group references in redactText.
            new, count = patterns.substitute(pattern, replacement, part)
            texts.append(new)
            found += count
        detected_fails = bool(params.get("failOnDetection", False)) and found > 0
        return GuardrailVerdict(
            not detected_fails,
            f"{found} match(es) replaced" if found else "nothing to replace",
            {"regexPattern": params.get("rule"), "replacements": found},
            texts=texts if found else None,
        )


class Contains(Guardrail):
    """``default.contains``: ``words`` with ``operator`` ``any``, ``all`` or ``none``."""

    id: ClassVar[str] = "default.contains"
    stream_mode: ClassVar[StreamMode] = "incremental"

    def validate(self, params: Mapping[str, Any]) -> None:
        require_names(params, "words")
        require_operator(params, "any")
        if len(params["words"]) > MAX_WORDS:
            # Each word is a scan of the whole text, on the event loop.
            raise ValueError(f"'words' may list at most {MAX_WORDS} words")

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        text = subject.text
        words = [str(w) for w in params["words"]]
        operator = params.get("operator", "any")
        found = [word for word in words if word in text]
        missing = [word for word in words if word not in text]
        if operator == "none":
            passed = not found
        elif subject.streaming and not subject.final:
            passed = True  # 'any'/'all' may still be satisfied by text not yet received
        else:
            passed = operator_holds(operator, found, missing)
        return GuardrailVerdict(
            passed,
            f"found {found}" if found else "none of the words found",
            {"foundWords": found, "missingWords": missing, "operator": operator},
        )


class _Count(Guardrail):
    """A count of the text between ``min`` and ``max`` parameters, inclusive."""

    noun: ClassVar[str]
    low: ClassVar[str]
    high: ClassVar[str]

    def validate(self, params: Mapping[str, Any]) -> None:
        low, high = optional_number(params, self.low), optional_number(params, self.high)
        if low is None and high is None:
            raise ValueError(f"give '{self.low}' or '{self.high}'")
        if low is not None and high is not None and low > high:
            raise ValueError(f"'{self.low}' is above '{self.high}'")

    @abstractmethod
    def count(self, text: str) -> int:
        """How many of :attr:`noun` ``text`` has."""

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        text = subject.text
        count = self.count(text)
        low = optional_number(params, self.low)
        high = optional_number(params, self.high)
        within = (low is None or count >= low) and (high is None or count <= high)
        passed = inverted(params, within)
        bounds = f"{low if low is not None else 0:g}-{high if high is not None else '∞'}"
        return GuardrailVerdict(
            passed,
            f"{count} {self.noun} {'within' if within else 'outside'} {bounds}",
            {
                f"{self.noun[:-1]}Count": count,
                self.low: low,
                self.high: high,
                "not": bool(params.get("not", False)),
                "textExcerpt": excerpt(text),
            },
        )


class WordCount(_Count):
    """``default.wordCount``: ``minWords`` / ``maxWords``."""

    id: ClassVar[str] = "default.wordCount"
    noun, low, high = "words", "minWords", "maxWords"

    def count(self, text: str) -> int:
        return len(text.split())


class SentenceCount(_Count):
    """``default.sentenceCount``: ``minSentences`` / ``maxSentences`` (sentences end in
    ``.``, ``!`` or ``?``; a final sentence without one counts too)."""

    id: ClassVar[str] = "default.sentenceCount"
    noun, low, high = "sentences", "minSentences", "maxSentences"

    def count(self, text: str) -> int:
        return len([s for s in re.split(r"(?<=[.!?])\s+|[.!?]+$", text.strip()) if s.strip()])


class CharacterCount(_Count):
    """``default.characterCount``: ``minCharacters`` / ``maxCharacters`` (code points)."""

    id: ClassVar[str] = "default.characterCount"
    noun, low, high = "characters", "minCharacters", "maxCharacters"

    def count(self, text: str) -> int:
        return len(text)


class EndsWith(Guardrail):
    """``default.endsWith``: the text ends with ``suffix`` (a final period allowed)."""

    id: ClassVar[str] = "default.endsWith"

    def validate(self, params: Mapping[str, Any]) -> None:
        require(params, "suffix", str)

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        text, suffix = subject.text.rstrip(), str(params["suffix"])
        ends = text.endswith(suffix) or text.endswith(suffix + ".")
        return GuardrailVerdict(
            inverted(params, ends),
            f"the text {'ends' if ends else 'does not end'} with {suffix!r}",
            {"suffix": suffix, "textExcerpt": excerpt(text)},
        )


class _Case(Guardrail):
    upper: ClassVar[bool]

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        letters = [c for c in subject.text if c.isalpha()]
        ok = all(c.isupper() if self.upper else c.islower() for c in letters)
        case = "upper" if self.upper else "lower"
        return GuardrailVerdict(
            inverted(params, ok), f"{'all' if ok else 'not all'} letters are {case} case"
        )


class AllUppercase(_Case):
    """``default.alluppercase``: every letter is upper case."""

    id: ClassVar[str] = "default.alluppercase"
    upper = True


class AllLowercase(_Case):
    """``default.alllowercase``: every letter is lower case."""

    id: ClassVar[str] = "default.alllowercase"
    upper = False


class NotNull(Guardrail):
    """``default.notNull``: the text is not empty."""

    id: ClassVar[str] = "default.notNull"

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        empty = not subject.text.strip()
        return GuardrailVerdict(
            inverted(params, not empty), "the text is empty" if empty else "the text is not empty"
        )


CHECKS: tuple[type[Guardrail], ...] = (
    RegexMatch,
    RegexReplace,
    Contains,
    WordCount,
    SentenceCount,
    CharacterCount,
    EndsWith,
    AllUppercase,
    AllLowercase,
    NotNull,
)

"""The first-party verifiers: each compares one aspect of two questions' readings."""

from __future__ import annotations

from abc import abstractmethod

from portkey_mw.interfaces import SemanticVerifier

from .analysis import PARTICLES, Reading, analyse
from .lexicon import lemmas, lexicon, opposed


class ReadingVerifier(SemanticVerifier):
    """A verifier that decides from the two questions' readings alone (no I/O)."""

    #: what the verifier vetoes, for the docs and ``GET /v1/admin/cache``
    vetoes: str = ""

    async def verify(self, question: str, cached: str) -> bool:
        return self.agree(analyse(question), analyse(cached))

    @abstractmethod
    def agree(self, new: Reading, old: Reading) -> bool:
        """Whether the readings agree in what this verifier compares."""


class NumbersVerifier(ReadingVerifier):
    """Numbers must be the same, and units, where both questions name some."""

    name = "numbers"
    vetoes = "a different number (3 vs 4, 'twice' vs 3) or unit (ounces vs grams, USD vs EUR)"

    def agree(self, new: Reading, old: Reading) -> bool:
        if new.numbers != old.numbers:
            return False
        # "How long does shipping take" and "how many days" ask the same, and so do "38
        # degrees Celsius" and "38 °C": units one side adds are no disagreement; units that
        # differ on both sides (ounces vs grams in a cup) are.
        return new.units <= old.units or old.units <= new.units


class EntitiesVerifier(ReadingVerifier):
    """Every name in one question must be in the other (a typo of it counts)."""

    name = "entities"
    vetoes = "a different name: place, person, product, library, quoted text"

    def agree(self, new: Reading, old: Reading) -> bool:
        return _names_found(new.entities, old) and _names_found(old.entities, new)


class NegationVerifier(ReadingVerifier):
    """Both questions must be negated, or neither."""

    name = "negation"
    vetoes = "one question negated and the other not ('safe' vs 'not safe')"

    def agree(self, new: Reading, old: Reading) -> bool:
        return new.negated == old.negated


class DirectionVerifier(ReadingVerifier):
    """What follows *from*, *to*, *into*, *in*, *than*, *per* must not be swapped."""

    name = "direction"
    vetoes = "a swapped direction: from X to Y vs from Y to X, X than Y vs Y than X"

    def agree(self, new: Reading, old: Reading) -> bool:
        for marker, ordered in new.roles.items():
            others = old.roles.get(marker)
            if others is None or others == ordered:
                continue
            objects, other_objects = set(ordered), set(others)
            if objects == other_objects:
                return False  # "9 am in London ... in New York" / "in New York ... in London"
            # Swapped: each side's object is in the other question, under another role.
            mine = {o for o in objects - other_objects if o in old.forms or o in old.units}
            theirs = {o for o in other_objects - objects if o in new.forms or o in new.units}
            if mine and theirs:
                return False
        return True


class AntonymsVerifier(ReadingVerifier):
    """A word of one question must not be the opposite of a word only the other has."""

    name = "antonyms"
    vetoes = "opposite words: open / closed, on / off, before / after, increase / decrease"

    def agree(self, new: Reading, old: Reading) -> bool:
        # Counted: "zoom in in Photoshop" has one "in" more than "zoom out in Photoshop".
        only_new = new.form_counts - old.form_counts
        only_old = old.form_counts - new.form_counts
        if any(
            opposed(a, b)
            for a in only_new
            if a not in PARTICLES
            for b in only_old
            if b not in PARTICLES
        ):
            return False
        return not any(
            before == other_before and opposed(particle, other)
            for before, particle in new.particles - old.particles
            for other_before, other in old.particles - new.particles
        )


class TimeVerifier(ReadingVerifier):
    """The particular times named, and past against future, must agree."""

    name = "time"
    vetoes = "a different time: yesterday vs tomorrow, Monday vs Friday, did vs will"

    def agree(self, new: Reading, old: Reading) -> bool:
        if new.times != old.times:
            return False
        past_future = {"past", "future"}
        return (
            not (new.tenses and old.tenses)
            or bool(new.tenses & old.tenses)
            or not (new.tenses | old.tenses) >= past_future
        )


def _names_found(names: frozenset[str], other: Reading) -> bool:
    words = set(other.words) | other.forms | other.entities
    return all(_found(name, words, other) for name in names)


def _found(name: str, words: set[str], other: Reading) -> bool:
    if name in words:
        return True
    if not any(ch.isdigit() for ch in name) and any(_near(name, word) for word in words):
        return True  # a typo of a name is the name; a version or a model number is not
    unit = lexicon().units.get(name)
    if unit is not None and unit in other.units:
        return True  # "Celsius" and "°C"
    # A short form WordNet does not know, of a word it does: "dict", "dictionary".
    stem = name[:-1] if name.endswith("s") else name  # "dicts"
    return (
        len(stem) >= 3
        and not lemmas(name)
        and any(word.startswith(stem) and lemmas(word) for word in words)
    )


def _near(first: str, second: str) -> bool:
    """Whether two words are one typo apart (two for long words): "pasword", "frnace"."""
    if abs(len(first) - len(second)) > 2 or min(len(first), len(second)) < 4:
        return False
    limit = 2 if min(len(first), len(second)) >= 9 else 1
    return _distance(first, second, limit) <= limit


def _distance(a: str, b: str, limit: int) -> int:
    """The optimal-string-alignment distance (a swap of neighbours is one edit), capped."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


#: every first-party verifier, in the order they run (cheapest, most often decisive first)
FIRST_PARTY: tuple[type[ReadingVerifier], ...] = (
    NumbersVerifier,
    NegationVerifier,
    DirectionVerifier,
    TimeVerifier,
    AntonymsVerifier,
    EntitiesVerifier,
)

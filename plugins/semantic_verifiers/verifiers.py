"""The first-party verifiers: each compares one aspect of two questions' readings."""

from __future__ import annotations

from portkey_mw.interfaces import SemanticVerifier

from .analysis import Reading, analyse
from .lexicon import opposed


class ReadingVerifier(SemanticVerifier):
    """A verifier that decides from the two questions' readings alone (no I/O)."""

    #: what the verifier vetoes, for the docs and ``GET /v1/admin/cache``
    vetoes: str = ""

    async def verify(self, question: str, cached: str) -> bool:
        return self.agree(analyse(question), analyse(cached))

    def agree(self, new: Reading, old: Reading) -> bool:
        """Whether the readings agree in what this verifier compares."""
        raise NotImplementedError


class NumbersVerifier(ReadingVerifier):
    """Numbers must be the same, and units, where both questions name some."""

    name = "numbers"
    vetoes = "a different number (3 vs 4, 'twice' vs 3) or unit (ounces vs grams, USD vs EUR)"

    def agree(self, new: Reading, old: Reading) -> bool:
        if new.numbers != old.numbers:
            return False
        # "How long does shipping take" and "how many days" ask the same: a unit on one side
        # only is no disagreement; two different units are.
        return not (new.units and old.units) or new.units == old.units


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
        for marker, objects in new.roles.items():
            others = old.roles.get(marker)
            if others is None or others == objects:
                continue
            # Swapped: each side's object is in the other question, under another role.
            mine = {o for o in objects - others if o in old.forms or o in old.units}
            theirs = {o for o in others - objects if o in new.forms or o in new.units}
            if mine and theirs:
                return False
        return True


class AntonymsVerifier(ReadingVerifier):
    """A word of one question must not be the opposite of a word only the other has."""

    name = "antonyms"
    vetoes = "opposite words: open / closed, on / off, before / after, increase / decrease"

    def agree(self, new: Reading, old: Reading) -> bool:
        only_new = new.forms - old.forms
        only_old = old.forms - new.forms
        return not any(opposed(a, b) for a in only_new for b in only_old)


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
    return all(name in words or any(_near(name, word) for word in words) for name in names)


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

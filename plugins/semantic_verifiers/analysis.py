"""One reading of a question, shared by every verifier: its words, and what in them must
agree with another question for one answer to serve both.

:func:`analyse` is cached: a cached question is read once, however often it is a
candidate, and the new question once for all verifiers and candidates.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from .lexicon import lemmas, lexicon

#: quoted text is compared whole ("translate 'good morning'" is not "'good night'")
QUOTED = re.compile(
    r"""(?:^|(?<=[\s(]))['"\u201c\u2018]([^'"\u201d\u2019]{2,}?)['"\u201d\u2019]"""
    r"(?=$|[\s.,;:!?)])"
)
#: a token: a word (with the dots, slashes, pluses or hashes of code names, versions and
#: units kept inside it), a number, or a currency or degree sign
TOKEN = re.compile(r"[$€£¥]|°[cf]\b|[\w][\w'\u2019]*(?:[./+#-][\w]+)*[+#]*|[.!?]", re.IGNORECASE)
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)")
SCALED = re.compile(r"(\d+(?:\.\d+)?)([km])")  # 10k, 2m
DIGITS = re.compile(r"\d+")
#: words whose opposite ("out" for "in") opposes only after the same word: "zoom in" /
#: "zoom out", not "find out how long" / "the length in JavaScript"
PARTICLES = frozenset({"in", "out", "on", "off", "up", "down"})

#: words that carry no name or fact of their own
_FUNCTION_WORDS = """
a an the this that these those my your our their his her its me you we they he she
it i us them what which who whom whose when where why how is are am was were be been
being do does did doing done have has had having can could will would shall should
may might must to of in on at by for with about from into onto than as and or but if
so any some there here please thanks thank hi hello hey just also too very really
tell know need want like get got let's lets it's im i'm i've ive i'd id i'll ill
you're youre what's whats how's hows where's wheres who's whos that's thats there's
theres much many more most few each every all both either whether not no never n't
nor without cannot none anyone someone something anything kindly sir madam okay ok
per else another other others via etc vs
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())

NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "dozen": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
    "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "tenth": 10,
    "half": 0.5, "quarter": 0.25, "double": 2, "twice": 2, "triple": 3,
}  # fmt: skip

NEGATIONS = frozenset({"not", "no", "never", "n't", "cannot", "without", "none", "nobody",
                       "nothing", "nowhere", "neither", "nor"})  # fmt: skip
#: contractions typed without their apostrophe, which negate like "n't"
_BARE_NEGATIONS = """
dont cant wont isnt arent doesnt didnt wasnt werent shouldnt couldnt wouldnt hasnt
havent hadnt aint mustnt neednt
"""
BARE_NEGATIONS = frozenset(_BARE_NEGATIONS.split())

#: words whose object has a role: "from Denver to Boston" is not "from Boston to Denver"
ROLE_MARKERS = {
    "from": "from", "to": "to", "into": "to", "towards": "to", "toward": "to", "->": "to",
    "in": "in", "than": "than", "per": "per", "vs": "vs", "versus": "vs", "over": "over",
    "of": "of",
}  # fmt: skip

PAST = frozenset({"did", "was", "were", "had", "used"})
FUTURE = frozenset({"will", "shall", "gonna", "'ll", "tomorrow's"})
RELATIVE = {"last": "last", "previous": "last", "past": "last", "next": "next",
            "coming": "next", "following": "next", "upcoming": "next", "this": "this"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reading:
    """What one question says that another must say too."""

    #: lowercase words in order (quoted text left out), with the apostrophes of
    #: contractions split off ("don't" -> "do", "n't")
    words: tuple[str, ...]
    #: every base form of every word (the words themselves when WordNet knows none)
    forms: frozenset[str]
    #: the same, counted ("in in" twice)
    form_counts: Counter[str]
    #: each particle with the word before it: ("zoom", "in"), ("check", "in")
    particles: frozenset[tuple[str, str]]
    numbers: tuple[float, ...]
    units: frozenset[str]
    #: names: capitalised words inside a sentence, WordNet's proper nouns, code names,
    #: words WordNet does not know, and quoted text
    entities: frozenset[str]
    negated: bool
    #: marker class -> the words that are its objects, in order ("from" -> ("denver",))
    roles: dict[str, tuple[str, ...]]
    #: particular times named (a synset per time word, "next:month" for relative ones)
    times: frozenset[str]
    #: "past" / "future" markers present
    tenses: frozenset[str]


def _split(text: str) -> tuple[list[tuple[str, bool]], list[str]]:
    """``(token, starts a sentence)`` pairs, and the quoted passages taken out first."""
    quoted = [match.group(1).strip().lower() for match in QUOTED.finditer(text)]
    text = QUOTED.sub(" QUOTED ", text)
    tokens: list[tuple[str, bool]] = []
    start = True
    for match in TOKEN.finditer(text):
        token = match.group(0)
        if token in ".!?":
            start = True
            continue
        tokens.append((token, start))
        start = False
    return tokens, quoted


def _words(tokens: list[tuple[str, bool]]) -> list[tuple[str, str, bool]]:
    """``(lowercase word, as written, starts a sentence)``, contractions split."""
    out: list[tuple[str, str, bool]] = []
    for token, start in tokens:
        if token == "QUOTED":
            continue
        token = token.replace("\u2019", "'")
        lower = token.lower()
        if lower.endswith("n't"):
            stem = {"can't": "can", "won't": "will", "shan't": "shall"}.get(lower, lower[:-3])
            out += [(stem, token, start), ("n't", "n't", False)]
        elif lower.endswith(("'s", "'re", "'ve", "'ll", "'d", "'m")):
            stem, _, tail = lower.rpartition("'")
            out += [(stem, token, start), ("'" + tail, "'" + tail, False)]
        elif lower in BARE_NEGATIONS:
            out += [(lower[:-2] if lower != "cant" else "can", token, start), ("n't", "", False)]
        else:
            out.append((lower.rstrip("'"), token, start))
    return out


def _number(word: str) -> float | None:
    word = ORDINAL.sub(r"\1", word)
    scaled = SCALED.fullmatch(word)
    if scaled:
        return float(scaled.group(1)) * (1000 if scaled.group(2) == "k" else 1_000_000)
    if NUMBER.fullmatch(word):
        # "1,000" is a thousand; "3,5" (a decimal comma) is read as 35 either way round.
        return float(word.replace(",", ""))
    found = NUMBER_WORDS.get(word)
    return float(found) if found is not None else None


def _is_entity(lower: str, written: str, start: bool, forms: frozenset[str]) -> bool:
    if lower in FUNCTION_WORDS or not any(ch.isalnum() for ch in lower) or lower[0] == "'":
        return False  # a sign ($, °c) is a unit, not a name
    known = lexicon()
    if any(ch.isdigit() for ch in lower) and any(ch.isalpha() for ch in lower):
        return True  # gpt-4, python3, iphone15, 2fa
    if any(ch in "._/#+" for ch in lower.strip("._/#+")):
        return True  # os.path, c++, file.txt
    if "-" in lower and all(lemmas(part) for part in lower.split("-") if part):
        return False  # carry-on, check-in: words WordNet knows
    if lower.isdigit():
        return False
    if lower in known.proper or not forms:
        return True  # France, tokyo; numpy, kubernetes (or a typo, matched loosely)
    capitalised = written[:1].isupper() or any(ch.isupper() for ch in written[1:])
    return capitalised and not start


@lru_cache(maxsize=4096)
def analyse(text: str) -> Reading:
    """The reading of ``text`` (cached: the same text is read once)."""
    known = lexicon()
    tokens, quoted = _split(text)
    words = _words(tokens)
    lower = [w for w, _, _ in words]
    form_counts: Counter[str] = Counter()
    word_forms: list[frozenset[str]] = []
    parts: list[str] = []  # the words, with hyphenated ones in their parts
    for word in lower:
        found = lemmas(word)
        word_forms.append(found)
        form_counts.update(found or {word})
        pieces = [piece for piece in word.split("-") if piece] if "-" in word else [word]
        if len(pieces) > 1:
            form_counts.update(piece for piece in pieces if lemmas(piece))
        parts += pieces
    particles = {
        (parts[i - 1], part) for i, part in enumerate(parts) if part in PARTICLES and i > 0
    }
    numbers = sorted(n for w in lower if (n := _number(w)) is not None)
    # Digits inside a name count too: a 15-year-old is not a 5-year-old.
    numbers += [float(d) for w in lower if _number(w) is None for d in DIGITS.findall(w)]
    numbers.sort()
    units = set()
    times = set()
    entities = set(quoted)
    for i, (word, written, start) in enumerate(words):
        # "in" (inch) and "a" (ampere) are units to WordNet, never to a question.
        greeting = i > 0 and lower[i - 1] == "good"  # "Good evening, could you ...?"
        for form in () if word in FUNCTION_WORDS else word_forms[i] | {word}:
            if form in known.times and not greeting:  # a time, not a unit: "tomorrow" is no measure
                times.add(known.times[form])
            elif form in known.units:
                units.add(known.units[form])
        if i + 1 < len(lower):
            pair = f"{word}_{lower[i + 1]}"
            if pair in known.times:
                times.add(known.times[pair])
            if pair in known.units:
                units.add(known.units[pair])
            relative = RELATIVE.get(word)
            if relative is not None:
                target = lower[i + 1]
                unit = next((known.units[f] for f in word_forms[i + 1] if f in known.units), None)
                if unit is not None or target in known.times:
                    times.add(f"{relative}:{unit or known.times[target]}")
        if _is_entity(word, written, start, word_forms[i]) and _number(word) is None:
            entities.add(word)
    # A currency sign is a unit: "$100" and "100 dollars" agree, "$100" and "€100" do not.
    roles: dict[str, list[str]] = {}
    for i, word in enumerate(lower):
        marker = ROLE_MARKERS.get(word)
        if marker is None:
            continue
        for following in lower[i + 1 :]:
            if following in FUNCTION_WORDS or _number(following) is not None:
                continue
            roles.setdefault(marker, []).append(_canonical(following))
            break
    tenses = {"past" for w in lower if w in PAST} | {"future" for w in lower if w in FUTURE}
    if "going" in lower and "to" in lower[lower.index("going") + 1 : lower.index("going") + 2]:
        tenses.add("future")
    negations = sum(1 for w in lower if w in NEGATIONS)
    return Reading(
        words=tuple(lower),
        forms=frozenset(form_counts),
        form_counts=form_counts,
        particles=frozenset(particles),
        numbers=tuple(numbers),
        units=frozenset(units),
        entities=frozenset(entities),
        negated=negations % 2 == 1,
        roles={k: tuple(v) for k, v in roles.items()},
        times=frozenset(times),
        tenses=frozenset(tenses),
    )


def _canonical(word: str) -> str:
    """A role's object as compared: its unit when it names one, else its first base form."""
    known = lexicon()
    found = lemmas(word)
    for form in found | {word}:
        if form in known.units:
            return known.units[form]
    return min(found) if found else word

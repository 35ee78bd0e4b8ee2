"""The verifiers' word knowledge: WordNet's table (derived by :mod:`.derive`, shipped in
``data/``), read once per process, plus the few words it lacks.

Lookups go through :func:`lemmas`, WordNet's own way of finding a word's base forms
(irregular forms from its exception lists, then its suffix rules), so "closed" finds
"close" and "closed", and "mice" finds "mouse".
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import orjson

TABLE = Path(__file__).with_name("data") / "wordnet.json.gz"

#: WordNet's detachment rules (suffix -> replacement), every part of speech at once
SUFFIXES = (
    ("ies", "y"), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
    ("men", "man"), ("s", ""), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
    ("ing", "e"), ("ing", ""), ("er", ""), ("est", ""), ("er", "e"), ("est", "e"),
)  # fmt: skip

#: opposites WordNet links only through other senses or not at all: particles and
#: everyday verbs of an app or a trip (WordNet has the rest, 3,500 pairs)
EXTRA_ANTONYMS = (
    ("in", "out"), ("before", "after"), ("up", "down"), ("above", "below"),
    ("over", "under"), ("inside", "outside"), ("arrive", "depart"), ("arrival", "departure"),
    ("add", "remove"), ("import", "export"), ("push", "pull"), ("login", "logout"),
    ("enter", "exit"), ("include", "exclude"), ("accept", "reject"), ("allow", "block"),
    ("min", "max"), ("earliest", "latest"), ("cheapest", "dearest"), ("encrypt", "decrypt"),
    ("encode", "decode"), ("upgrade", "downgrade"), ("start", "stop"), ("with", "without"),
    ("ascending", "descending"), ("inbound", "outbound"), ("incoming", "outgoing"),
    ("rise", "fall"), ("gain", "lose"), ("win", "lose"), ("lend", "borrow"),
    ("next", "last"), ("next", "previous"), ("upcoming", "past"),
)  # fmt: skip

#: negating prefixes, each with the shortest stem it negates: "unsafe" opposes "safe" when
#: both are words (longer stems for "in-" and its kin, which often negate nothing: "stall")
NEGATING_PREFIXES = (("un", 3), ("non", 3), ("dis", 4), ("in", 5), ("im", 5), ("il", 5), ("ir", 5))

#: short forms of units WordNet does not list, to the unit they name
EXTRA_UNITS = {
    "oz": "ounce", "lbs": "pound", "usd": "dollar", "$": "dollar", "eur": "euro", "€": "euro",
    "gbp": "pound", "£": "pound", "jpy": "yen", "¥": "yen", "inr": "rupee", "celsius": "celsius",
    "°c": "celsius", "fahrenheit": "fahrenheit", "°f": "fahrenheit", "mph": "mph", "kph": "kph",
    "km/h": "kph", "tbsp": "tablespoon", "tsp": "teaspoon", "ml": "milliliter", "hrs": "hour",
    "mins": "minute", "secs": "second", "yr": "year", "yrs": "year", "gigs": "gigabyte",
    "tablespoon": "tablespoon", "teaspoon": "teaspoon",
}  # fmt: skip

#: words WordNet files as units that are mostly something else in a question
NOT_UNITS = frozenset(
    {"point", "bit", "mark", "head", "line", "pace", "second", "time", "set", "grand", "case"}
)


@dataclass(frozen=True, slots=True)
class Lexicon:
    """WordNet's vocabulary, names, opposites, units and times (see :mod:`.derive`)."""

    vocabulary: frozenset[str]
    proper: frozenset[str]
    exceptions: dict[str, tuple[str, ...]]
    antonyms: frozenset[tuple[str, str]]
    units: dict[str, str]
    times: dict[str, str]


@cache
def lexicon() -> Lexicon:
    """The table, read on first use (a few tens of milliseconds, once per process)."""
    table = orjson.loads(gzip.decompress(TABLE.read_bytes()))
    antonyms = {(a, b) for a, b in table["antonyms"]}
    antonyms.update(EXTRA_ANTONYMS)
    antonyms.update((b, a) for a, b in list(antonyms))
    units = {k: v for k, v in table["units"].items() if k not in NOT_UNITS}
    for short, full in EXTRA_UNITS.items():
        units[short] = units.get(full, full)
    return Lexicon(
        vocabulary=frozenset(table["vocabulary"]),
        proper=frozenset(table["proper"]),
        exceptions={k: tuple(v) for k, v in table["exceptions"].items()},
        antonyms=frozenset(antonyms),
        units=units,
        times=table["times"],
    )


#: longer than any word WordNet has: known to be none, and never cached
MAX_WORD = 40


def lemmas(word: str) -> frozenset[str]:
    """The base forms WordNet knows for ``word`` (lowercase); empty when it knows none."""
    return _lemmas(word) if len(word) <= MAX_WORD else frozenset()


@lru_cache(maxsize=65536)
def _lemmas(word: str) -> frozenset[str]:
    known = lexicon()
    found = set(known.exceptions.get(word, ()))
    if word in known.vocabulary:
        found.add(word)
    for suffix, replacement in SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            base = word[: -len(suffix)] + replacement
            if base in known.vocabulary:
                found.add(base)
    return frozenset(found)


def opposed(first: str, second: str) -> bool:
    """Whether two lemmas are opposites: a WordNet antonym pair, or one is the other with a
    negating prefix ("safe" / "unsafe", "connect" / "disconnect")."""
    if (first, second) in lexicon().antonyms:
        return True
    short, long = sorted((first, second), key=len)
    return any(long == prefix + short and len(short) >= stem for prefix, stem in NEGATING_PREFIXES)

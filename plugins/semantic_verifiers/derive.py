"""Derive the verifiers' lexical table from Princeton WordNet 3.0 (not run by the gateway).

The gateway ships the result, ``data/wordnet.json.gz``, with WordNet's licence
(``data/WORDNET-LICENSE``), so that it needs no WordNet at run time. To rebuild it (on
Debian: ``apt-get install wordnet-base``)::

    python -m portkey_mw_plugins.semantic_verifiers.derive /usr/share/wordnet

What it keeps, all lowercase, multi-word lemmas joined with ``_``:

* ``vocabulary``: every single-word lemma (a word outside it is a name or a typo);
* ``proper``: lemmas WordNet only ever spells capitalised (France, Tokyo, Monday);
* ``exceptions``: irregular inflections to their lemmas (``went`` -> ``go``);
* ``antonyms``: the lemma pairs of WordNet's antonym pointers, in every part of speech;
* ``units``: lemmas of units of measurement and currencies, each to its synset, so that
  ``km`` and ``kilometre`` are one unit;
* ``times``: lemmas naming a particular time (a weekday, a month, a holiday, a season, a
  time of day, yesterday or tomorrow), each to its synset.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

PARTS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
#: roots whose hyponyms (recursively) are units, by noun lemma and sense number
UNIT_ROOTS = [("unit_of_measurement", 1), ("time_unit", 1)]
#: single synsets of units that WordNet files elsewhere (a week is a time period)
UNIT_WORDS = [("week", 1), ("year", 1), ("decade", 1), ("century", 1)]
#: roots whose hyponyms name a particular time
TIME_ROOTS = [
    ("day_of_the_week", 1),
    ("calendar_month", 1),
    ("holiday", 1),
    ("holiday", 2),
    ("season", 2),
    ("time_of_day", 1),
]
#: single synsets that name a time relative to now (their own lemmas only)
TIME_WORDS = [
    ("yesterday", 1),
    ("tomorrow", 1),
    ("today", 1),
    ("tonight", 1),
    ("evening", 1),
    ("afternoon", 1),
    ("weekend", 1),
]


Synsets = dict[tuple[str, int], tuple[list[str], list[tuple[str, str, int, int]]]]


def _synsets(root: Path) -> Synsets:
    """``(pos, offset)`` -> (words as spelled, pointers as ``(symbol, target synset,
    source word number, target word number)``)."""
    found: Synsets = {}
    for name in ("noun", "verb", "adj", "adv"):
        for line in (root / f"data.{name}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue  # the licence header
            fields = line.split(" | ", 1)[0].split()
            offset, pos, count = int(fields[0]), fields[2], int(fields[3], 16)
            words = [fields[4 + 2 * i].split("(", 1)[0] for i in range(count)]
            at = 4 + 2 * count
            pointers = []
            for i in range(int(fields[at])):
                symbol, target, target_pos, numbers = fields[at + 1 + 4 * i : at + 5 + 4 * i]
                pointers.append(
                    (
                        symbol,
                        PARTS[target_pos][0] + str(int(target)),
                        int(numbers[:2], 16),
                        int(numbers[2:], 16),
                    )
                )
            found[(PARTS[pos][0], offset)] = (words, [(s, t, a, b) for s, t, a, b in pointers])
    return found


def _sense(root: Path, lemma: str, number: int) -> tuple[str, int]:
    for line in (root / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(lemma + " "):
            fields = line.split()
            pointer_count = int(fields[3])
            offsets = fields[6 + pointer_count :]
            return ("n", int(offsets[number - 1]))
    raise LookupError(f"{lemma}.n.{number} is not in {root}")


def derive(root: Path) -> dict[str, object]:
    """The table, from a WordNet 3.0 ``dict`` directory."""
    synsets = _synsets(root)
    key_of = {f"{pos}{offset}": (pos, offset) for pos, offset in synsets}
    vocabulary: set[str] = set()
    spellings: dict[str, set[bool]] = {}
    for words, _ in synsets.values():
        for word in words:
            lower = word.lower()
            if "_" not in lower:
                vocabulary.add(lower)
            spellings.setdefault(lower, set()).add(word[:1].isupper())
    proper = sorted(word for word, capital in spellings.items() if capital == {True})

    antonyms: set[tuple[str, str]] = set()
    for words, pointers in synsets.values():
        for symbol, target, source, target_word in pointers:
            if symbol != "!" or not source or not target_word:
                continue
            other = synsets[key_of[target]][0][target_word - 1].lower()
            pair = sorted((words[source - 1].lower(), other))
            antonyms.add((pair[0], pair[1]))

    def below(roots: list[tuple[str, int]]) -> dict[str, str]:
        lemmas: dict[str, str] = {}
        todo = [_sense(root, lemma, number) for lemma, number in roots]
        seen = set(todo)
        while todo:
            key = todo.pop()
            words, pointers = synsets[key]
            for word in words:
                lemmas.setdefault(word.lower(), f"{key[0]}{key[1]}")
            for symbol, target, _, _ in pointers:
                if symbol in ("~", "~i") and key_of[target] not in seen:
                    seen.add(key_of[target])
                    todo.append(key_of[target])
        return lemmas

    units = below(UNIT_ROOTS)
    for lemma, number in UNIT_WORDS:
        key = _sense(root, lemma, number)
        for word in synsets[key][0]:
            units.setdefault(word.lower(), f"{key[0]}{key[1]}")
    for lemma in ("unit_of_measurement", "unit", "measure", "time_unit", "unit_of_time"):
        units.pop(lemma, None)  # the roots themselves name no particular unit
    times = below(TIME_ROOTS)
    for lemma, number in TIME_WORDS:
        key = _sense(root, lemma, number)
        for word in synsets[key][0]:
            times.setdefault(word.lower(), f"{key[0]}{key[1]}")
    for lemma, _ in TIME_ROOTS:
        times.pop(lemma, None)
    # A unit of time ("hour", "day") names no particular time, unless listed above.
    named = {word.lower() for lemma, n in TIME_WORDS for word in synsets[_sense(root, lemma, n)][0]}
    for lemma in [lemma for lemma in times if lemma in units and lemma not in named]:
        del times[lemma]

    exceptions: dict[str, list[str]] = {}
    for name in ("noun", "verb", "adj", "adv"):
        for line in (root / f"{name}.exc").read_text(encoding="latin-1").splitlines():
            inflected, *bases = line.split()
            if "_" not in inflected:
                exceptions.setdefault(inflected, [])
                exceptions[inflected] += [b for b in bases if b not in exceptions[inflected]]
    return {
        "source": "Princeton WordNet 3.0",
        "vocabulary": sorted(vocabulary),
        "proper": proper,
        "exceptions": exceptions,
        "antonyms": sorted(antonyms),
        "units": dict(sorted(units.items())),
        "times": dict(sorted(times.items())),
    }


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/wordnet")
    out = Path(__file__).with_name("data") / "wordnet.json.gz"
    table = derive(root)
    data = json.dumps(table, separators=(",", ":"), sort_keys=True).encode()
    out.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    sizes = {k: len(v) for k, v in table.items() if isinstance(v, list | dict)}
    print(f"{out}: {out.stat().st_size} bytes, {sizes}")


if __name__ == "__main__":
    main()

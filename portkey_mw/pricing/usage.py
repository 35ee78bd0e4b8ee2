"""Reading a response's usage the way genai-prices counts it, and flat prices worked out
without its general machinery.

genai-prices prices any mix of units (modalities, cache lifetimes, reasoning, tiers by
prompt size) by splitting the usage into the units a model prices, which takes a few
hundred microseconds. Most requests need far less: a model with one price each for input,
output, cache reads and cache writes, and a usage with only those four counts. For them,
:class:`FlatRates` does the same arithmetic on the same decimals (tests compare it with
genai-prices over its whole catalogue); anything else goes to genai-prices itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeAlias

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice, Usage, UsageExtractor

#: the counts :class:`FlatRates` prices (genai-prices' usage keys)
BASIC: Final = frozenset(
    {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"}
)

#: (where in an OpenAI usage object, genai-prices usage key) for the plain reading; a
#: count read from the first path present. Cache writes are ``cache_creation_tokens`` in
#: the gateway's translations and ``cache_write_tokens`` where a provider reports them.
OPENAI_READING: Final[tuple[tuple[tuple[str, ...], str], ...]] = (
    (("prompt_tokens",), "input_tokens"),
    (("completion_tokens",), "output_tokens"),
    (("prompt_tokens_details", "cached_tokens"), "cache_read_tokens"),
    (("prompt_tokens_details", "cache_creation_tokens"), "cache_write_tokens"),
    (("prompt_tokens_details", "cache_write_tokens"), "cache_write_tokens"),
    (("prompt_tokens_details", "audio_tokens"), "input_audio_tokens"),
    (("completion_tokens_details", "audio_tokens"), "output_audio_tokens"),
    (("completion_tokens_details", "reasoning_tokens"), "output_reasoning_tokens"),
    # The Responses API's spelling, for a usage in that shape.
    (("input_tokens",), "input_tokens"),
    (("output_tokens",), "output_tokens"),
    (("input_tokens_details", "cached_tokens"), "cache_read_tokens"),
    (("output_tokens_details", "reasoning_tokens"), "output_reasoning_tokens"),
)
_PLAIN_PAIRS = frozenset(OPENAI_READING)
#: how genai-prices spells an extractor that reads the body's ``usage`` object
_USAGE_ROOTS = ("usage", ["usage"])

#: a reading: plain counts, or genai-prices' own usage object
Reading: TypeAlias = "dict[str, int] | Usage"


def openai_token_counts(
    usage: Mapping[str, Any], keys: frozenset[str] | None = None
) -> dict[str, int]:
    """genai-prices' usage counts from an OpenAI-shaped usage object (``keys``: only these).

    ``prompt_tokens`` counts every input token, cache reads and writes included, as
    genai-prices expects. A count that is not a whole non-negative number is left out.
    """
    counts: dict[str, int] = {}
    for path, key in OPENAI_READING:
        if key in counts or (keys is not None and key not in keys):
            continue
        value: Any = usage
        for step in path:
            # (a parsed body's objects are dicts, and most counts are absent: the exact type
            # test and the None test spare the slower Mapping check)
            if value is None:
                break
            value = value.get(step) if type(value) is dict or isinstance(value, Mapping) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            counts[key] = value
    return counts


@dataclass(frozen=True, slots=True)
class UsageReader:
    """How one provider's usage is read.

    :param extractor: genai-prices' reader of this provider's usage, when it reads fields
        the plain reading does not (or reads them differently); ``None``: the plain reading.
    :param keys: the usage keys the plain reading keeps (the ones genai-prices reads for
        this provider); ``None``: all.
    """

    extractor: UsageExtractor | None = None
    keys: frozenset[str] | None = None

    @classmethod
    def plain(cls) -> UsageReader:
        """The plain OpenAI reading (translated usage, or a provider genai-prices lacks)."""
        return cls()

    @classmethod
    def of(cls, extractors: list[UsageExtractor] | None) -> UsageReader:
        """The reader for a provider that relays its own usage, from genai-prices' readers:
        its chat one (or its default, when that reads ``usage``)."""
        by_flavor = {e.api_flavor: e for e in extractors or () if e.root in _USAGE_ROOTS}
        extractor = by_flavor.get("chat") or by_flavor.get("default")
        if extractor is None:
            return cls()
        pairs = [(_path(m.path), m.dest) for m in extractor.mappings]
        dests = [dest for _, dest in pairs]
        # The plain reading reads each key once; genai-prices adds up a key read twice.
        if set(pairs) <= _PLAIN_PAIRS and len(set(dests)) == len(dests):
            return cls(keys=frozenset(dests))
        return cls(extractor=extractor)

    def read(self, usage: Mapping[str, Any]) -> Reading:
        """Counts (or genai-prices' usage) for a response's ``usage`` object."""
        if self.extractor is not None:
            try:
                return self.extractor.extract({"usage": usage})[1]
            except ValueError:
                pass  # a field it requires is missing: the plain reading of what there is
        return openai_token_counts(usage, self.keys)


def reported(reading: Reading, key: str) -> int:
    """One count of a reading (0 when not reported)."""
    if isinstance(reading, dict):
        return int(reading.get(key, 0))
    value = reading.reported_value(key)
    return int(value) if value else 0


def as_usage(reading: Reading) -> Usage:
    """The reading as genai-prices' usage object."""
    from genai_prices.types import Usage

    return Usage(**reading) if isinstance(reading, dict) else reading


@dataclass(frozen=True, slots=True)
class FlatRates:
    """A model's prices when they are one flat rate per basic token count (dollars per
    million tokens, cache reads and writes apart when priced) plus any price per request."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None
    cache_write: Decimal | None
    per_request: Decimal
    #: whether some finer token unit has a price of its own (audio input, reasoning
    #: output, a cache lifetime): then only a usage of the basic counts is priced here
    refined: bool

    @classmethod
    def of(cls, prices: ModelPrice) -> FlatRates | None:
        """The flat rates of ``prices``; ``None`` if any price is tiered, or no input price.

        Prices of other units (searches, pages, hours, ...) count nothing for a usage in
        tokens, the only usage :meth:`cost` prices.
        """
        rates: dict[str, Decimal] = {}
        for key, value in vars(prices).items():
            if value is None or key.startswith("_"):
                continue
            if not isinstance(value, Decimal):
                return None  # tiered by prompt size
            rates[key] = value
        if "input_mtok" not in rates:
            return None
        return cls(
            input=rates["input_mtok"],
            output=rates.get("output_mtok", Decimal(0)),
            cache_read=rates.get("cache_read_mtok"),
            cache_write=rates.get("cache_write_mtok"),
            per_request=rates.get("requests_kcount", Decimal(0)) / 1000,
            refined=any(key.endswith("_mtok") and key not in _BASIC_PRICES for key in rates),
        )

    def cost(self, counts: Mapping[str, int]) -> Decimal | None:
        """Dollars for ``counts`` (genai-prices' figure); ``None`` for counts genai-prices
        splits further or refuses (it explains why): finer counts (audio, reasoning) when
        a finer unit has a price, or without the total they are part of, or cache counts
        above the input's."""
        for key, value in counts.items():
            if value and key not in BASIC:
                # Without a price of their own, finer counts are priced in their total.
                whole = "output_tokens" if key.startswith("output_") else "input_tokens"
                if self.refined or whole not in counts:
                    return None
        uncached = counts.get("input_tokens", 0)
        total = Decimal(0)
        # Each priced cache count is its own unit, taken out of the input count.
        for rate, key in (
            (self.cache_read, "cache_read_tokens"),
            (self.cache_write, "cache_write_tokens"),
        ):
            if rate is not None:
                count = counts.get(key, 0)
                uncached -= count
                total += rate * count / _MILLION
        if uncached < 0:
            return None
        total += self.input * uncached / _MILLION
        total += self.output * counts.get("output_tokens", 0) / _MILLION
        return total + self.per_request


_MILLION = Decimal(1_000_000)
_BASIC_PRICES = frozenset({"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"})


def _path(path: Any) -> tuple[str, ...]:
    return (path,) if isinstance(path, str) else tuple(str(step) for step in path)

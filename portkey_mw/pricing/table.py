"""The price table: the server file's overrides, then genai-prices' bundled catalogue."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from portkey_mw.pricing.providers import PROVIDERS, TRANSLATED
from portkey_mw.pricing.usage import FlatRates, Reading, UsageReader, as_usage, reported

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice
    from genai_prices.types import Provider as CatalogProvider

#: distinct (provider, model) pairs whose counts of unpriced requests are kept apart; the
#: rest are added up under ``unpriced_other_models`` (a client can name any model at all)
MAX_UNPRICED_MODELS = 1000
#: (provider, model) lookups remembered, hits and misses alike
LOOKUP_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Price:
    """An operator's price for a model (the server file's ``pricing``), in US dollars per
    million tokens. Cache reads and writes without a price of their own cost ``input``."""

    input: float
    output: float = 0.0
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(self, reading: Reading) -> float:
        """Dollars for a usage reading (its input count includes cache reads and writes)."""
        read = reported(reading, "cache_read_tokens")
        written = reported(reading, "cache_write_tokens")
        uncached = max(reported(reading, "input_tokens") - read - written, 0)
        dollars = (
            uncached * self.input
            + read * (self.input if self.cache_read is None else self.cache_read)
            + written * (self.input if self.cache_write is None else self.cache_write)
            + reported(reading, "output_tokens") * self.output
        )
        return dollars / 1_000_000


@dataclass(slots=True)
class _Unpriced:
    requests: int = 0
    reason: str = ""


class PriceTable:
    """Turns a response's usage into dollars, per provider and model, and counts what it
    could not price.

    :param overrides: the server file's prices by model name. A name covers the models it
        is a prefix of (the longest wins), so ``gpt-4o`` prices ``gpt-4o-2024-08-06``;
        ``openai/gpt-4o`` and ``models/gemini-pro`` are looked up by their last part too.
    """

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        # Imported here: loading the catalogue takes a few hundred milliseconds, paid once
        # when a gateway is built rather than by every import of this module.
        from genai_prices import data

        self.overrides: dict[str, Price] = dict(overrides or {})
        self._override_names = sorted(self.overrides, key=len, reverse=True)
        self._catalog: dict[str, CatalogProvider] = {p.id: p for p in data.providers}
        self._all_providers = data.providers
        # Keyed by id(); the value keeps the catalogue's ModelPrice alive with it.
        self._flat: dict[int, tuple[ModelPrice, FlatRates | None]] = {}
        #: requests given a cost, and the ones that got none although they had a usage
        self.priced = 0
        self.unpriced: dict[tuple[str, str], _Unpriced] = {}
        #: unpriced requests of models beyond :data:`MAX_UNPRICED_MODELS`
        self.unpriced_other = 0
        # Matching a model name walks a provider's match rules (or every override name):
        # remember both outcomes, within a bound, as clients choose the names.
        self._cached_override = functools.lru_cache(LOOKUP_CACHE_SIZE)(self._find_override)
        self._cached_model = functools.lru_cache(LOOKUP_CACHE_SIZE)(self._find_model)
        self._cached_reader = functools.lru_cache(LOOKUP_CACHE_SIZE)(self._find_reader)

    # -- lookups --------------------------------------------------------------------------

    def catalog_provider(self, provider: str | None) -> str | None:
        """genai-prices' id for a portkey-mw provider id (``None``: it has no list prices)."""
        if provider is None:
            return None
        mapped = PROVIDERS.get(provider)
        if mapped is not None:
            return mapped
        return provider if provider in self._catalog else None

    def override_for(self, model: str) -> Price | None:
        """The server file's price for ``model`` (its longest listed prefix), if any."""
        return self._cached_override(model)

    def model_for(self, provider: str, model: str) -> tuple[CatalogProvider, ModelInfo] | None:
        """genai-prices' provider and model for ``model`` at ``provider`` (a portkey-mw id)."""
        return self._cached_model(provider, model)

    def _find_override(self, model: str) -> Price | None:
        bare = model.rsplit("/", 1)[-1]
        for name in self._override_names:
            if model.startswith(name) or bare.startswith(name):
                return self.overrides[name]
        return None

    def _find_model(self, provider: str, model: str) -> tuple[CatalogProvider, ModelInfo] | None:
        catalog_id = self.catalog_provider(provider)
        if catalog_id is None:
            return None
        catalog = self._catalog[catalog_id]
        # Fallbacks are genai-prices' own (Azure serves OpenAI's models, Vertex serves
        # Anthropic's), each priced as the serving provider lists it.
        found = catalog.find_model(model, all_providers=self._all_providers)
        return (catalog, found) if found is not None else None

    def reader_for(self, provider: str | None) -> UsageReader:
        """How ``provider``'s usage is read (see :data:`~.providers.TRANSLATED`)."""
        return self._cached_reader(provider)

    def _find_reader(self, provider: str | None) -> UsageReader:
        catalog_id = self.catalog_provider(provider)
        if provider in TRANSLATED or catalog_id is None:
            return UsageReader.plain()
        return UsageReader.of(self._catalog[catalog_id].extractors)

    # -- costs ----------------------------------------------------------------------------

    def cost(
        self,
        usage: Mapping[str, Any] | None,
        *,
        provider: str | None,
        model: str | None,
        answered_by: str | None = None,
        at: float | None = None,
    ) -> float | None:
        """Dollars for ``usage`` (the response's, in OpenAI's shape) at ``provider``'s price
        for the model; ``None`` when there is no usage or no price (then counted unpriced).

        :param model: the model the request named.
        :param answered_by: the model the response names, when it names one; tried first,
            as it is what the provider charged for (an Azure deployment, a config's
            ``override_params``). An override of either name wins over genai-prices.
        :param at: when the request was made (seconds since the epoch): some providers
            price by date or by time of day. Default: now.
        """
        if not usage:
            return None
        names = [name for name in dict.fromkeys((answered_by, model)) if name]
        if not names:
            return None
        reading = self.reader_for(provider).read(usage)
        for name in names:
            override = self.override_for(name)
            if override is not None:
                self.priced += 1
                return override.cost(reading)
        for name in names:
            found = self.model_for(provider, name) if provider else None
            if found is None:
                continue
            try:
                dollars = self._catalog_cost(*found, reading, at)
            except ValueError as exc:  # counts genai-prices cannot split (docs/caching.md)
                self._count_unpriced(provider, name, f"usage genai-prices cannot price: {exc}")
                return None
            self.priced += 1
            return dollars
        self._count_unpriced(provider, names[0], "no price for this model at this provider")
        return None

    def _catalog_cost(
        self, catalog: CatalogProvider, listed: ModelInfo, reading: Reading, at: float | None
    ) -> float:
        when = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
        prices = listed.get_prices(when)
        if isinstance(reading, dict):
            cached = self._flat.get(id(prices))
            if cached is None:
                cached = self._flat[id(prices)] = (prices, FlatRates.of(prices))
            flat = cached[1]
            dollars = flat.cost(reading) if flat is not None else None
            if dollars is not None:
                return float(dollars)
        calculation = listed.calc_price(as_usage(reading), catalog, genai_request_timestamp=when)
        return float(calculation.total_price)

    def _count_unpriced(self, provider: str | None, model: str, reason: str) -> None:
        key = (provider or "", model)
        entry = self.unpriced.get(key)
        if entry is None:
            if len(self.unpriced) >= MAX_UNPRICED_MODELS:
                self.unpriced_other += 1
                return
            entry = self.unpriced[key] = _Unpriced()
        entry.requests += 1
        entry.reason = reason

    def stats(self) -> dict[str, Any]:
        """A JSON-ready view for ``GET /v1/admin/pricing``."""
        unpriced = sorted(self.unpriced.items(), key=lambda item: (-item[1].requests, item[0]))
        return {
            "source": {"package": "genai-prices", "version": version("genai-prices")},
            "providers": dict(PROVIDERS),
            "overrides": {
                name: {
                    "input": price.input,
                    "output": price.output,
                    "cache_read": price.cache_read,
                    "cache_write": price.cache_write,
                }
                for name, price in sorted(self.overrides.items())
            },
            "priced_requests": self.priced,
            "unpriced_requests": sum(e.requests for _, e in unpriced) + self.unpriced_other,
            "unpriced": [
                {"provider": p or None, "model": m, "requests": e.requests, "reason": e.reason}
                for (p, m), e in unpriced
            ],
            "unpriced_other_models": self.unpriced_other,
        }

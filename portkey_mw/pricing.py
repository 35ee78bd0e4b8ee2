"""What a request cost, from its token usage and a table of list prices per model.

Prices are US dollars per million tokens (``portkey_mw/data/prices.toml``, extended or
overridden by the server file's ``pricing``). A model takes the price of its longest listed
prefix, so dated snapshots share their family's price; an unlisted model has no cost
(``None``), never a guessed one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million input (prompt) and output (completion) tokens."""

    input: float
    output: float = 0.0


def _bundled() -> dict[str, Price]:
    text = resources.files("portkey_mw").joinpath("data/prices.toml").read_text("utf-8")
    return {name: Price(**row) for name, row in tomllib.loads(text)["models"].items()}


class PriceTable:
    """Looks up a model's price and turns a usage object into dollars."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._prices = {**_bundled(), **(overrides or {})}
        # Longest first, so "gpt-4o-mini" wins over "gpt-4o" for "gpt-4o-mini-2024-07-18".
        self._names = sorted(self._prices, key=len, reverse=True)
        self._memo: dict[str, Price | None] = {}

    def price(self, model: str) -> Price | None:
        """The price of ``model`` (or of its longest listed prefix), if listed."""
        if model not in self._memo:
            # Provider-qualified names ("openai/gpt-4o", "models/gemini-1.5-pro") too.
            bare = model.rsplit("/", 1)[-1]
            self._memo[model] = next(
                (self._prices[name] for name in self._names if bare.startswith(name)), None
            )
        return self._memo[model]

    def cost(self, model: str | None, usage: Mapping[str, Any] | None) -> float | None:
        """Dollars for ``usage`` (OpenAI's shape) at ``model``'s price; ``None`` if unknown."""
        if not model or not usage:
            return None
        price = self.price(model)
        if price is None:
            return None
        prompt = _tokens(usage, "prompt_tokens", "input_tokens")
        completion = _tokens(usage, "completion_tokens", "output_tokens")
        return (prompt * price.input + completion * price.output) / 1_000_000


def _tokens(usage: Mapping[str, Any], *names: str) -> int:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int):
            return value
    return 0

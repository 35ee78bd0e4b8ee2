"""Pydantic models for Portkey's routing config (the ``x-portkey-config`` schema).

Keys are snake_case as in Portkey's documentation; camelCase spellings are accepted too,
because Portkey's gateway and SDKs emit both. Keys this schema does not name are kept: they
are provider options (``azure_resource_name``, ``aws_region`` ...) that provider plugins read.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from portkey_mw import patterns
from portkey_mw.forwarding import refusal, unforwardable

#: The most retries one target may ask for. Portkey's gateway caps attempts at 5.
MAX_RETRY_ATTEMPTS = 5

#: Query operators a conditional strategy may use (Portkey's set).
CONDITION_OPERATORS = frozenset(
    {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$regex", "$and", "$or"}
)


def _snake_or_camel(name: str) -> AliasChoices:
    return AliasChoices(name, to_camel(name))


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_snake_or_camel),
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class StrategyMode(StrEnum):
    """How a config picks among its targets."""

    SINGLE = "single"
    FALLBACK = "fallback"
    LOADBALANCE = "loadbalance"
    CONDITIONAL = "conditional"


def _check_status_codes(codes: list[int] | None) -> list[int] | None:
    for code in codes or ():
        if not 100 <= code <= 599:
            raise ValueError(f"{code} is not an HTTP status code (100-599)")
    return codes


class Condition(_Model):
    """One branch of a conditional strategy: when ``query`` matches, use target ``then``."""

    query: dict[str, Any]
    then: str

    @field_validator("query")
    @classmethod
    def _known_operators(cls, query: dict[str, Any]) -> dict[str, Any]:
        _check_query(query)
        return query


def _check_query(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("$") and key not in CONDITION_OPERATORS:
                known = ", ".join(sorted(CONDITION_OPERATORS))
                raise ValueError(f"unknown operator {key!r} (known: {known})")
            if key in ("$and", "$or") and not (
                isinstance(value, list) and all(isinstance(q, dict) for q in value)
            ):
                raise ValueError(f"{key} takes a list of queries, got {value!r}")
            if key in ("$in", "$nin") and not isinstance(value, list):
                raise ValueError(f"{key} takes a list of values, got {value!r}")
            if key == "$regex":
                try:
                    patterns.compile_pattern(str(value))
                except patterns.error as exc:
                    raise ValueError(f"$regex {value!r} does not compile: {exc}") from exc
            _check_query(value)
    elif isinstance(node, list):
        for item in node:
            _check_query(item)


class Strategy(_Model):
    """``strategy``: the mode plus the mode's own settings."""

    mode: StrategyMode
    on_status_codes: list[int] | None = None
    conditions: list[Condition] | None = None
    default: str | None = None

    _codes = field_validator("on_status_codes")(_check_status_codes)


class Retry(_Model):
    """``retry``: how often one target is tried again, and on which statuses."""

    attempts: int = Field(default=0, ge=0, le=MAX_RETRY_ATTEMPTS)
    on_status_codes: list[int] | None = None
    #: Portkey's default is false; here a provider's Retry-After is honoured unless disabled
    use_retry_after_header: bool = True

    _codes = field_validator("on_status_codes")(_check_status_codes)


class Cache(_Model):
    """``cache``: response caching. ``max_age`` is in **seconds** (see docs/configuration.md)."""

    mode: Literal["simple", "semantic"]
    max_age: int | None = Field(default=None, gt=0)
    similarity_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    #: semantic verifiers a candidate must pass (``None``: the server file's
    #: ``cache.verifiers``; ``[]``: similarity alone decides)
    verifiers: list[str] | None = Field(default=None, max_length=32)


class Target(BaseModel):
    """A config node: a provider to call, or a strategy over nested targets.

    The top-level config is itself a target. Unknown keys are kept as provider options.
    """

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_snake_or_camel),
        populate_by_name=True,
        extra="allow",
        frozen=True,
    )

    name: str | None = None
    strategy: Strategy | None = None
    targets: list[Target] | None = None
    provider: str | None = None
    api_key: str | None = None
    virtual_key: str | None = None
    weight: float | None = Field(default=None, ge=0)
    on_status_codes: list[int] | None = None
    retry: Retry | None = None
    cache: Cache | None = None
    request_timeout: int | None = Field(default=None, gt=0, description="milliseconds")
    custom_host: str | None = None
    forward_headers: list[str] | None = None
    override_params: dict[str, Any] | None = None
    before_request_hooks: list[dict[str, Any]] | None = None
    after_request_hooks: list[dict[str, Any]] | None = None
    input_guardrails: list[Any] | None = None
    output_guardrails: list[Any] | None = None
    strict_open_ai_compliance: bool | None = None

    _codes = field_validator("on_status_codes")(_check_status_codes)

    @field_validator("forward_headers")
    @classmethod
    def _forwardable(cls, value: list[str] | None) -> list[str] | None:
        refused = unforwardable(value or ())
        if refused:
            raise ValueError(refusal("forward_headers", refused))
        return value

    @field_validator("custom_host")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"custom_host must be an http(s) URL, got {value[:100]!r}")
        if value and "@" in value.split("/", 3)[2]:
            # Credentials in a URL end up in logs and error messages: they are refused.
            raise ValueError("custom_host must not carry a user name or password (user:pass@)")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _shape(self) -> Target:
        if self.targets is not None:
            if not self.targets:
                raise ValueError("targets must not be empty")
            mode = self.strategy.mode if self.strategy else StrategyMode.SINGLE
            if mode is StrategyMode.LOADBALANCE and all(
                (t.weight if t.weight is not None else 1.0) == 0 for t in self.targets
            ):
                raise ValueError("loadbalance needs at least one target with weight > 0")
            if mode is StrategyMode.CONDITIONAL:
                self._check_conditional()
        elif self.strategy is not None:
            raise ValueError(f"strategy {self.strategy.mode.value!r} needs targets")
        elif self.provider is None and self.virtual_key is None:
            raise ValueError("a target needs a provider (or virtual_key, or targets)")
        return self

    def _check_conditional(self) -> None:
        assert self.strategy is not None and self.targets is not None
        if not self.strategy.conditions:
            raise ValueError("strategy.conditions is required for mode 'conditional'")
        names = {t.name for t in self.targets if t.name}
        for ref in [c.then for c in self.strategy.conditions] + [self.strategy.default]:
            if ref is not None and ref not in names:
                raise ValueError(f"conditional refers to target {ref!r}, which no target names")

    @property
    def provider_options(self) -> dict[str, Any]:
        """Keys outside the schema, handed to the provider plugin as its options."""
        return dict(self.__pydantic_extra__ or {})


#: The top-level routing config is a target.
Config = Target

"""Provider descriptions: the data that makes one OpenAI-compatible provider differ."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portkey_mw.config.server import describe_validation_error
from portkey_mw.context import Endpoint
from portkey_mw.errors import InvalidConfig

AuthStyle = Literal["bearer", "optional-bearer", "none"]
#: the rerank wire formats (:mod:`portkey_mw.rerank`)
RerankFormat = Literal["cohere", "voyage", "jina"]


class ProviderEntry(BaseModel):
    """One provider table as written (shipped catalog or server file), checked by type."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    paths: dict[Endpoint, str] = Field(default_factory=dict)
    endpoints: list[Endpoint] | None = None
    auth: AuthStyle | None = None
    renames: dict[str, str] = Field(default_factory=dict)
    developer_role_as_system: bool = False
    option_headers: dict[str, str] = Field(default_factory=dict)
    features: list[Literal["stream", "tools", "vision", "json"]] | None = None
    rerank: RerankFormat = "cohere"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """How to reach one OpenAI-compatible provider."""

    id: str
    base_url: str | None
    paths: dict[Endpoint, str]
    endpoints: frozenset[Endpoint]
    auth: AuthStyle = "bearer"
    renames: dict[str, str] = field(default_factory=dict)
    developer_role_as_system: bool = False
    option_headers: dict[str, str] = field(default_factory=dict)
    features: frozenset[str] = frozenset()
    #: the wire format of its ``rerank`` endpoint
    rerank: RerankFormat = "cohere"


def load_catalog(extra: dict[str, dict[str, Any]] | None = None) -> dict[str, ProviderSpec]:
    """The shipped catalog (``providers.toml``), plus providers from the server file."""
    text = resources.files(__package__).joinpath("providers.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    defaults = data["defaults"]
    specs = {pid: _spec(pid, raw, defaults) for pid, raw in data["providers"].items()}
    for pid, raw in (extra or {}).items():
        specs[pid] = _spec(pid, raw, defaults, source="server file 'providers'")
    return specs


def _spec(
    pid: str, raw: Any, defaults: dict[str, Any], source: str = "providers.toml"
) -> ProviderSpec:
    try:
        entry = ProviderEntry.model_validate(raw)
    except ValidationError as exc:
        raise InvalidConfig(
            f"{source}: provider {pid!r}: {describe_validation_error(exc)}"
        ) from exc
    paths = {Endpoint(k): v for k, v in defaults["paths"].items()} | entry.paths
    endpoints = entry.endpoints or [Endpoint(e) for e in defaults["endpoints"]]
    return ProviderSpec(
        id=pid,
        base_url=entry.base_url.rstrip("/") if entry.base_url else None,
        paths=paths,
        endpoints=frozenset(endpoints),
        auth=entry.auth or defaults["auth"],
        renames=entry.renames,
        developer_role_as_system=entry.developer_role_as_system,
        option_headers=entry.option_headers,
        features=frozenset(entry.features if entry.features is not None else defaults["features"]),
        rerank=entry.rerank,
    )

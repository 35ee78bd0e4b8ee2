"""Provider descriptions: the data that makes one OpenAI-compatible provider differ."""

from __future__ import annotations

import re
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

#: Placeholders a base URL may hold that come from the request body, not from an option:
#: the model (``org/name`` kept whole) and the model before a ``:`` (an adapter suffix).
BODY_PLACEHOLDERS = frozenset({"model", "model_base"})
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


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
    headers: dict[str, str] = Field(default_factory=dict)
    base_url_option: str | None = None
    query_options: dict[str, str] = Field(default_factory=dict)


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
    #: headers every request carries (``extra-parameters: drop`` for Azure AI)
    headers: dict[str, str] = field(default_factory=dict)
    #: an option whose value, a URL, replaces ``base_url`` (Portkey's ``azure_foundry_url``)
    base_url_option: str | None = None
    #: config option -> query parameter (``azure_api_version`` -> ``api-version``)
    query_options: dict[str, str] = field(default_factory=dict)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The ``{name}`` fields of ``base_url``, in order."""
        return tuple(_PLACEHOLDER.findall(self.base_url or ""))

    @property
    def destination_options(self) -> frozenset[str]:
        """The options that decide where requests go: a client may not set them by header
        when the server holds the credential (docs/security.md)."""
        named = {p for p in self.placeholders if p not in BODY_PLACEHOLDERS}
        if self.base_url_option:
            named.add(self.base_url_option)
        return frozenset(named)


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
    if entry.base_url and "{" in _PLACEHOLDER.sub("", entry.base_url):
        raise InvalidConfig(
            f"{source}: provider {pid!r}: base_url placeholders are {{lower_snake_case}} "
            f"names, got {entry.base_url!r}"
        )
    paths = {Endpoint(k): v for k, v in defaults["paths"].items()} | entry.paths
    endpoints = set(entry.endpoints or [Endpoint(e) for e in defaults["endpoints"]])
    if not BODY_PLACEHOLDERS.intersection(_PLACEHOLDER.findall(entry.base_url or "")):
        # Pass-through goes below the base URL; one that names the model has no fixed base.
        endpoints.add(Endpoint.PROXY)
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
        headers={k.lower(): v for k, v in entry.headers.items()},
        base_url_option=entry.base_url_option,
        query_options=entry.query_options,
    )

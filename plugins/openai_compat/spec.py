"""Provider descriptions: the data that makes one OpenAI-compatible provider differ."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from portkey_mw.context import Endpoint
from portkey_mw.errors import InvalidConfig

AuthStyle = Literal["bearer", "optional-bearer", "none"]
_KNOWN_KEYS = frozenset(
    {
        "base_url",
        "paths",
        "endpoints",
        "auth",
        "renames",
        "developer_role_as_system",
        "option_headers",
    }
)


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
    pid: str, raw: dict[str, Any], defaults: dict[str, Any], source: str = "providers.toml"
) -> ProviderSpec:
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise InvalidConfig(f"{source}: provider {pid!r} has unknown keys {sorted(unknown)}")
    try:
        paths = {Endpoint(k): v for k, v in {**defaults["paths"], **raw.get("paths", {})}.items()}
        endpoints = frozenset(Endpoint(e) for e in raw.get("endpoints", defaults["endpoints"]))
    except ValueError as exc:
        raise InvalidConfig(f"{source}: provider {pid!r}: {exc}") from exc
    auth = raw.get("auth", defaults["auth"])
    if auth not in ("bearer", "optional-bearer", "none"):
        raise InvalidConfig(f"{source}: provider {pid!r}: unknown auth style {auth!r}")
    base_url = raw.get("base_url")
    return ProviderSpec(
        id=pid,
        base_url=base_url.rstrip("/") if base_url else None,
        paths=paths,
        endpoints=endpoints,
        auth=auth,
        renames=dict(raw.get("renames", {})),
        developer_role_as_system=bool(raw.get("developer_role_as_system", False)),
        option_headers=dict(raw.get("option_headers", {})),
    )

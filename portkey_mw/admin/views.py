"""Records as the portkey-ai SDK reads them: the response objects of the control plane.

Nothing secret is ever put in one: a virtual key shows that a credential is set (a fixed
``"********"``) and which ones, never any part of it; an API key shows its hint. Every
timestamp is an ISO 8601 string (the SDK's models refuse numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from portkey_mw.store.records import ApiKey, ConfigVersion, SavedConfig, VirtualKey

#: What stands for a credential that is set.
SET_MARK = "********"
#: The organisation every record belongs to: portkey-mw serves one.
ORGANISATION_ID = "default"


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as Portkey writes them."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def listing(items: Sequence[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    """A list response: ``{object: "list", total, data}``."""
    return {
        "object": "list",
        "total": len(items) if total is None else total,
        "data": list(items),
        "success": True,
    }


def created(object_: str, **ids: Any) -> dict[str, Any]:
    """A create or update answer: the ids at the top level (the SDK reads them there) and
    in ``data`` (where Portkey's API reference puts them)."""
    return {**ids, "object": object_, "success": True, "data": dict(ids)}


def _limits(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def virtual_key(record: VirtualKey) -> dict[str, Any]:
    """The virtual key object (``virtual_keys.retrieve`` and each list item)."""
    secrets = sorted(name for name, value in record.secrets.items() if value)
    return {
        "id": record.id,
        "slug": record.slug,
        "name": record.name,
        "provider": record.provider,
        "ai_provider_name": record.provider,
        "note": record.note,
        "status": record.status,
        "workspace_id": record.workspace_id,
        "organisation_id": ORGANISATION_ID,
        "usage_limits": _limits(record.usage_limits),
        "reset_usage": 0,
        "rate_limits": [dict(limit) for limit in record.rate_limits],
        "model_config": dict(record.options),
        "custom_host": record.custom_host,
        "defaults": dict(record.defaults),
        # which credentials are set, never their values (nor any part of them)
        "masked_api_key": SET_MARK if record.secrets.get("api_key") else None,
        "credentials": secrets,
        "expires_at": timestamp(record.expires_at),
        "created_at": timestamp(record.created_at),
        "last_updated_at": timestamp(record.updated_at or record.created_at),
        "object": "virtual-key",
    }


def provider(record: VirtualKey, *, detail: bool) -> dict[str, Any]:
    """The same record through the providers API.

    The SDK's models differ in one field: a list item's ``rate_limits`` must be an object
    (the first limit, or null) and the detail's a list.
    """
    body = virtual_key(record)
    body["integration_id"] = record.provider
    body["object"] = "provider"
    if not detail:
        limits = body["rate_limits"]
        body["rate_limits"] = limits[0] if limits else None
    return body


def api_key(record: ApiKey) -> dict[str, Any]:
    """The API key object: its hint stands in for the key, which is never shown again."""
    return {
        "id": record.id,
        "key": record.key_hint,
        "name": record.name,
        "description": record.description,
        # Portkey's read object joins type and sub-type ("organisation-service")
        "type": f"{record.type}-{record.sub_type}",
        "sub_type": record.sub_type,
        "organisation_id": ORGANISATION_ID,
        "workspace_id": record.workspace_id,
        "user_id": record.user_id,
        "status": record.status,
        "created_at": timestamp(record.created_at),
        "last_updated_at": timestamp(record.updated_at or record.created_at),
        "creation_mode": "api",
        "rate_limits": [dict(limit) for limit in record.rate_limits],
        "usage_limits": _limits(record.usage_limits),
        "reset_usage": 0,
        "scopes": list(record.scopes),
        "defaults": {"allow_config_override": True, **record.defaults},
        "expires_at": timestamp(record.expires_at),
        "object": "api-key",
    }


def config(record: SavedConfig) -> dict[str, Any]:
    """The saved config object (``configs.retrieve`` and each list item)."""
    return {
        "id": record.id,
        "slug": record.slug,
        "name": record.name,
        "config": dict(record.config),
        "organisation_id": ORGANISATION_ID,
        "workspace_id": record.workspace_id,
        "is_default": int(record.is_default),
        "status": record.status,
        "owner_id": None,
        "updated_by": None,
        "format": "json",
        "type": "ORG_CONFIG",
        "version_id": record.version_id,
        "created_at": timestamp(record.created_at),
        "last_updated_at": timestamp(record.updated_at or record.created_at),
        "object": "config",
    }


def config_version(record: ConfigVersion) -> dict[str, Any]:
    """One version of a saved config."""
    return {
        "id": record.id,
        "version_id": record.id,
        "config_id": record.config_id,
        "config": dict(record.config),
        "created_at": timestamp(record.created_at),
        "object": "config-version",
    }

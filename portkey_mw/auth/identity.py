"""Who is calling the data plane: the gateway API key a request carries, if any.

``server.auth`` decides what a request without one gets:

* ``off`` -- keys are not looked at (the behaviour before the control plane, and the default
  when no admin key is configured, so the one-command demo needs none);
* ``optional`` -- a request may carry a gateway key (its defaults and limits then apply);
  one that carries an invalid key is refused;
* ``required`` -- every request needs a valid key (the default once an admin key is set).

A key comes as ``x-portkey-api-key`` (what the portkey-ai SDK sends), as ``Authorization:
Bearer`` (what the openai SDK sends) or as ``x-api-key`` (what the anthropic SDK sends): a
value with the gateway-key prefix is a gateway key, anything else stays the client's provider
key, as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from portkey_mw.admin.scopes import COMPLETIONS_SCOPE
from portkey_mw.auth.admin import AdminKey
from portkey_mw.auth.api_keys import KEY_PREFIX, MAX_KEY_LENGTH, KeyHasher, is_gateway_key
from portkey_mw.auth.catalog import Catalog
from portkey_mw.config.server import AuthMode
from portkey_mw.errors import AuthenticationError, InvalidConfig, PermissionDenied
from portkey_mw.store.records import ACTIVE, ApiKey

AUTH_VARIABLE = "PORTKEY_MW_AUTH"
_MODES: tuple[AuthMode, ...] = ("off", "optional", "required")


def auth_mode(
    configured: AuthMode | None, admin_key_set: bool, environ: Mapping[str, str] | None = None
) -> AuthMode:
    """The mode in force: ``PORTKEY_MW_AUTH``, else ``server.auth``, else ``required`` when
    an admin key is set and ``off`` otherwise.

    :raises InvalidConfig: ``PORTKEY_MW_AUTH`` names no mode.
    """
    env = os.environ if environ is None else environ
    value = env.get(AUTH_VARIABLE, "").strip().lower()
    if value:
        for mode in _MODES:
            if value == mode:
                return mode
        raise InvalidConfig(f"{AUTH_VARIABLE} must be off, optional or required, not {value!r}")
    if configured is not None:
        return configured
    return "required" if admin_key_set else "off"


def sent_gateway_key(headers: Mapping[str, str]) -> str | None:
    """The gateway key a request carries, if it carries one (validity aside)."""
    key = headers.get("x-portkey-api-key", "").strip()
    if is_gateway_key(key):
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and is_gateway_key(token):
        return token
    key = headers.get("x-api-key", "").strip()  # what the anthropic SDK sends
    return key if is_gateway_key(key) else None


class Identifier:
    """Finds the API key of each request, from the catalog (memory), never the store.

    :param mode: ``off``, ``optional`` or ``required``.
    :param catalog: the control plane's records; ``None`` without a store.
    :param hasher: digests keys under the store's pepper (set once the store is open).
    """

    def __init__(
        self,
        mode: AuthMode,
        catalog: Catalog | None,
        hasher: KeyHasher | None,
        admin_key: AdminKey | None = None,
    ) -> None:
        if mode != "off" and catalog is None:
            raise InvalidConfig(
                f"server.auth is {mode!r}, which needs the control-plane store (store.enabled)"
            )
        self.mode = mode
        self._catalog = catalog
        self.hasher = hasher
        self._admin_key = admin_key if admin_key is not None and admin_key.configured else None

    async def identify(self, headers: Mapping[str, str]) -> ApiKey | None:
        """The request's API key; ``None`` when it has none and may go on without.

        :raises AuthenticationError: missing (``required``), unknown, revoked or expired (401).
        :raises PermissionDenied: the key lacks ``completions.write`` (403).
        """
        if self._admin_key is not None:
            self._refuse_admin_key(headers)
        if self.mode == "off":
            return None
        sent = sent_gateway_key(headers)
        if sent is None:
            if self.mode == "required":
                raise AuthenticationError(
                    f"this gateway needs an API key: send x-portkey-api-key: {KEY_PREFIX}… or "
                    f"'Authorization: Bearer {KEY_PREFIX}…'",
                    code="api_key_required",
                )
            return None
        if self._catalog is None or self.hasher is None or len(sent) > MAX_KEY_LENGTH:
            raise AuthenticationError("the API key is not valid", code="invalid_api_key")
        record = await self._catalog.api_key(self.hasher.digest(sent))
        if record is None:
            raise AuthenticationError("the API key is not valid", code="invalid_api_key")
        check_key(record)
        if COMPLETIONS_SCOPE not in record.scopes:
            raise PermissionDenied(
                f"this API key lacks scope {COMPLETIONS_SCOPE!r}, which the data plane needs",
                code="missing_scope",
                param=COMPLETIONS_SCOPE,
            )
        return record

    def _refuse_admin_key(self, headers: Mapping[str, str]) -> None:
        """The admin key sent where a provider key goes (a Bearer token, ``x-api-key``)
        would be forwarded upstream like one: refuse it, whatever the mode."""
        assert self._admin_key is not None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        for value in (
            token.strip() if scheme.lower() == "bearer" else "",
            headers.get("x-api-key"),
        ):
            if value and self._admin_key.matches(value.strip()):
                raise AuthenticationError(
                    "the admin key is for the admin API only: send a gateway API key or a "
                    "provider key to the data plane",
                    code="admin_key_not_for_data_plane",
                )


def check_key(record: ApiKey, now: datetime | None = None) -> None:
    """Refuse a key that is revoked, disabled or expired (401)."""
    if record.status != ACTIVE:
        raise AuthenticationError(
            f"the API key {record.key_hint} is {record.status}", code=f"api_key_{record.status}"
        )
    if record.expires_at is not None and (now or datetime.now(UTC)) >= record.expires_at:
        raise AuthenticationError(
            f"the API key {record.key_hint} has expired", code="api_key_expired"
        )

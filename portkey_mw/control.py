"""The control plane inside one gateway process: the store, the catalog the data plane
reads, API-key identification, and who may call which admin route.

Opened at start-up (before the first request): the store (migrations, the vault's master
key check), then the catalog's first full load. A store that cannot open stops the start:
a gateway that cannot read its keys must not serve as if it had none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from portkey_mw.auth.admin import AdminKey, sent_key
from portkey_mw.auth.api_keys import KeyHasher, is_gateway_key
from portkey_mw.auth.catalog import Catalog
from portkey_mw.auth.identity import Identifier, auth_mode, check_key
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import AuthenticationError, PermissionDenied
from portkey_mw.store.protocols import ControlStore
from portkey_mw.store.records import ApiKey

log = structlog.get_logger("portkey_mw.control")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called an admin route: the operator (admin key) or an API key."""

    api_key: ApiKey | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the caller holds the admin key (every scope)."""
        return self.api_key is None

    def allows(self, scope: str) -> bool:
        """Whether the caller may use ``scope``."""
        return self.api_key is None or scope in self.api_key.scopes


ADMIN = Principal()


class ControlPlane:
    """The store, the catalog and identification for one gateway.

    :param settings: the server file (``store``, ``server.auth``).
    :param admin_key: the operator's key.
    :param store: the store to use; ``None`` with ``store.enabled`` false.
    """

    def __init__(
        self, settings: ServerSettings, admin_key: AdminKey, store: ControlStore | None
    ) -> None:
        self.admin_key = admin_key
        self.store = store
        options = settings.store
        self.catalog = (
            Catalog(
                store,
                refresh_interval=options.refresh_interval,
                miss_reads_per_second=options.miss_reads_per_second,
            )
            if store is not None
            else None
        )
        self.hasher: KeyHasher | None = None
        self.identifier = Identifier(
            auth_mode(settings.server.auth, admin_key.configured), self.catalog, None
        )

    async def open(self) -> None:
        """Open the store and load the catalog."""
        if self.store is None or self.catalog is None:
            return
        await self.store.open()
        pepper = getattr(self.store, "api_key_pepper", None)
        if isinstance(pepper, bytes):
            self.hasher = KeyHasher(pepper)
            self.identifier.hasher = self.hasher
        await self.catalog.load()
        if self.identifier.mode == "off" and self.catalog.virtual_keys:
            log.warning(
                "server.auth is off: any client may use the vault's virtual keys; set "
                "PORTKEY_MW_ADMIN_KEY or server.auth to require gateway API keys"
            )

    async def aclose(self) -> None:
        """Stop the catalog's refresh and close the store."""
        if self.catalog is not None:
            await self.catalog.aclose()
        if self.store is not None:
            await self.store.aclose()

    async def refresh(self) -> None:
        """Take in this process's own admin changes at once (not one interval later)."""
        if self.catalog is not None:
            await self.catalog.refresh()

    async def authorize(self, headers: Mapping[str, str], scope: str) -> Principal:
        """The caller of an admin route, if it may use ``scope``.

        :raises AuthenticationError: no key, or a key that is neither the admin key nor a
            valid gateway API key (401).
        :raises PermissionDenied: an API key without ``scope`` (403, naming it).
        """
        sent = sent_key(headers)
        if not sent:
            raise AuthenticationError(
                "the admin API needs the admin key or a gateway API key with the right "
                "scope: send it as x-portkey-api-key or 'Authorization: Bearer <key>'",
                code="admin_key_required",
            )
        if self.admin_key.matches(sent):
            return ADMIN
        if is_gateway_key(sent) and self.catalog is not None and self.hasher is not None:
            record = await self.catalog.api_key(self.hasher.digest(sent))
            if record is not None:
                check_key(record)
                if scope not in record.scopes:
                    raise PermissionDenied(
                        f"this API key lacks scope {scope!r}", code="missing_scope", param=scope
                    )
                return Principal(record)
        raise AuthenticationError("the key is not valid for the admin API", code="invalid_api_key")

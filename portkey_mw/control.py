"""The control plane inside one gateway process: the store, the catalog the data plane
reads, API-key identification, and who may call which admin route.

Opened at start-up (before the first request): the store (migrations, the vault's master
key check), then the catalog's first full load. A store that cannot open stops the start:
a gateway that cannot read its keys must not serve as if it had none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from portkey_mw.admin.services import ADMIN_PRINCIPAL, MissingScope, Principal
from portkey_mw.auth.admin import AdminKey, sent_key
from portkey_mw.auth.api_keys import MAX_KEY_LENGTH, KeyHasher, is_gateway_key
from portkey_mw.auth.catalog import Catalog
from portkey_mw.auth.identity import Identifier, auth_mode, check_key
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import AuthenticationError
from portkey_mw.store.protocols import ControlStore, StoreUnavailable

log = structlog.get_logger("portkey_mw.control")


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
        #: every admin call is the operator's (the CLI's in-process app, never served)
        self.local_operator = False
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
            auth_mode(settings.server.auth, admin_key.configured), self.catalog, None, admin_key
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

    def new_api_key(self) -> tuple[str, str, str]:
        """A fresh gateway API key: ``(key, digest, hint)``.

        :raises StoreUnavailable: the store is not open (no pepper to digest with).
        """
        if self.hasher is None:
            raise StoreUnavailable("the control-plane store is not open")
        made = self.hasher.new_key()
        return made.key, made.digest, made.hint

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
        if self.local_operator:
            return ADMIN_PRINCIPAL
        sent = sent_key(headers)
        if not sent:
            raise AuthenticationError(
                "the admin API needs the admin key or a gateway API key with the right "
                "scope: send it as x-portkey-api-key or 'Authorization: Bearer <key>'",
                code="admin_key_required",
            )
        if self.admin_key.matches(sent):
            return ADMIN_PRINCIPAL
        if (
            is_gateway_key(sent)
            and len(sent) <= MAX_KEY_LENGTH
            and self.catalog is not None
            and self.hasher is not None
        ):
            record = await self.catalog.api_key(self.hasher.digest(sent))
            if record is not None:
                check_key(record)
                if scope not in record.scopes:
                    raise MissingScope.lacking(scope)
                return Principal(
                    scopes=frozenset(record.scopes),
                    key_id=record.id,
                    workspace_id=record.acting_workspace,
                )
        raise AuthenticationError("the key is not valid for the admin API", code="invalid_api_key")


class RefreshingStore:
    """The store as the admin routes use it: after each write (``create_*``, ``update_*``,
    ``delete_*``), this process's catalog takes the change in at once; other processes do
    within one refresh interval."""

    _WRITES = ("create_", "update_", "delete_")

    def __init__(self, store: ControlStore, control: ControlPlane) -> None:
        self._store = store
        self._control = control

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not name.startswith(self._WRITES):
            return method

        async def write(*args: Any, **kwargs: Any) -> Any:
            result = await method(*args, **kwargs)
            try:
                await self._control.refresh()
            except Exception as exc:  # the write is done; the next poll takes it in
                log.warning("catalog refresh after a write failed", error=type(exc).__name__)
            return result

        return write

"""What the control-plane routes need from the rest of the gateway.

The routes see the store (:class:`~portkey_mw.store.protocols.ControlStore`), an
:data:`Authorize` callable that turns request headers into a :class:`Principal` or refuses,
and :class:`AdminServices`: the few checks and generators that belong to other concerns
(config validation, the provider registry, key generation, the outbound policy).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from yarl import URL

from portkey_mw.auth.outbound import check_client_host
from portkey_mw.errors import GatewayError, InvalidRequest
from portkey_mw.limits.backend import LimitBackend
from portkey_mw.limits.results import BudgetState
from portkey_mw.limits.subject import Subject
from portkey_mw.redact import redact_url

if TYPE_CHECKING:
    from portkey_mw.admin.log_services import LogServices


@dataclass(frozen=True, slots=True)
class Principal:
    """Who an admin request comes from, as :data:`Authorize` established it.

    :param scopes: the scopes the caller holds; ``None`` means every scope (the admin key).
    :param key_id: the gateway API key's id, when the caller used one.
    :param workspace_id: set for workspace keys: such a caller sees and makes only records
        of its own workspace. ``None``: organisation-wide.
    """

    scopes: frozenset[str] | None
    key_id: str | None = None
    workspace_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether this is the admin key (every scope, every workspace)."""
        return self.scopes is None

    def allows(self, scope: str) -> bool:
        """Whether the caller holds ``scope``."""
        return self.scopes is None or scope in self.scopes


#: The admin key's principal.
ADMIN_PRINCIPAL = Principal(scopes=None)

#: ``await authorize(headers, scope)``: the caller, or a :class:`GatewayError` -- 401 for a
#: missing, invalid, expired or revoked key, 403 (:class:`MissingScope`) for a key without
#: ``scope``. Headers are lower-case names.
Authorize = Callable[[Mapping[str, str], str], Awaitable[Principal]]


class MissingScope(GatewayError):
    """The caller's API key does not hold the scope the route needs (403)."""

    status = 403
    type = "permission_error"
    code = "missing_scope"

    @classmethod
    def lacking(cls, scope: str) -> MissingScope:
        """The error naming the one scope that is missing."""
        return cls(f"this API key lacks scope {scope!r}", param=scope)


class Policies(Protocol):
    """The server file's metadata budgets, as the admin routes read them."""

    @property
    def subjects(self) -> Sequence[Subject]:
        """Every policy, in the file's order."""

    def find(self, name: str) -> Subject | None:
        """The policy called ``name``."""


class SpendView(Protocol):
    """What the admin routes use of the gateway's spend control
    (:class:`portkey_mw.spend.SpendControl`): subjects, their usage, a reset."""

    @property
    def backend(self) -> LimitBackend:
        """Where the counters live (its ``name``, ``degraded`` and ``clock`` are read)."""

    @property
    def policies(self) -> Policies:
        """The metadata budgets."""

    async def usage(self, subject: Subject) -> BudgetState:
        """The subject's budget in its current period."""

    async def reset(self, subject: Subject) -> BudgetState:
        """Start the subject's current period over from zero (kept in the store at once)."""

    def health(self) -> dict[str, Any]:
        """The backend's state, the policies and the alerts."""


class AdminServices(Protocol):
    """The checks and generators the admin routes borrow from the rest of the gateway."""

    @property
    def spend(self) -> SpendView | None:
        """Budgets and rate limits (None: an app without spend control, whose usage
        routes answer 503)."""

    @property
    def known_providers(self) -> Collection[str]:
        """Every registered provider id: a virtual key naming another is refused (400)."""

    @property
    def named_configs(self) -> Collection[str]:
        """The server file's named configs: an API key's ``defaults.config_id`` may name
        one of these as well as a saved config."""

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Check a routing config before it is saved.

        :raises InvalidConfig: naming the fault (schema, unknown provider, guardrail id).
        """

    def new_api_key(self) -> tuple[str, str, str]:
        """A fresh gateway API key: ``(key, digest, hint)``; only the digest is stored and
        only the hint is ever shown again."""

    def check_custom_host(self, url: str) -> None:
        """Check a custom host an admin sets on a virtual key.

        :raises GatewayError: the URL is not one the gateway may send credentials to.
        """

    @property
    def log_services(self) -> LogServices | None:
        """The log store's queries, feedback and exports (None: ``logging.store: off``,
        and the log, feedback, export and analytics routes answer 503)."""


@dataclass(frozen=True, slots=True)
class Services:
    """:class:`AdminServices` from plain values and callables (the gateway builds one)."""

    validate: Callable[[Mapping[str, Any]], None]
    generate_key: Callable[[], tuple[str, str, str]]
    providers: Collection[str]
    configs: Collection[str] = ()
    custom_host_check: Callable[[str], None] | None = None
    #: the gateway's spend control (budgets and rate limits); see :class:`SpendView`
    spend: SpendView | None = None
    #: the log store's services, asked for at each call (the store opens at start-up)
    logs: Callable[[], LogServices | None] | None = None

    @property
    def log_services(self) -> LogServices | None:
        """See :class:`AdminServices`."""
        return self.logs() if self.logs is not None else None

    @property
    def known_providers(self) -> Collection[str]:
        """See :class:`AdminServices`."""
        return self.providers

    @property
    def named_configs(self) -> Collection[str]:
        """See :class:`AdminServices`."""
        return self.configs

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """See :class:`AdminServices`."""
        self.validate(config)

    def new_api_key(self) -> tuple[str, str, str]:
        """See :class:`AdminServices`."""
        return self.generate_key()

    def check_custom_host(self, url: str) -> None:
        """See :class:`AdminServices`; :func:`check_admin_custom_host` unless replaced."""
        (self.custom_host_check or check_admin_custom_host)(url)


def check_admin_custom_host(url: str, source: str = "custom_host") -> None:
    """A custom host an admin sets: an http(s) base URL without userinfo.

    Loopback and private hosts are allowed here -- where the operator's credentials go is
    the operator's choice; the outbound policy still checks every connection. Userinfo is
    refused because it would put a second credential in a field that is shown.

    :raises InvalidRequest: naming what is wrong (the URL shown without userinfo).
    """
    check_client_host(url, source)
    parsed = URL(url)
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise InvalidRequest(
            f"{source} must not contain a user name or password (user:pass@host), got "
            f"{redact_url(url[:200])!r}",
            param=source,
            code="invalid_custom_host",
        )

"""Which records a caller may see and make, beyond the route's scope.

A workspace key (its :class:`~portkey_mw.admin.services.Principal` has a ``workspace_id``)
sees only its workspace's records: others answer 404, as if they were not there, and what
it creates lands in its workspace. Nobody grants scopes they do not hold themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from portkey_mw.admin.services import MissingScope, Principal
from portkey_mw.errors import InvalidRequest


def visible(principal: Principal, workspace_id: str | None) -> bool:
    """Whether the caller may see a record of ``workspace_id``."""
    return principal.workspace_id is None or workspace_id == principal.workspace_id


def workspace_for(principal: Principal, requested: str | None) -> str | None:
    """The workspace a caller's create or list acts on.

    :raises MissingScope: a workspace key asked for another workspace (403).
    """
    own = principal.workspace_id
    if own is None:
        return requested
    if requested is not None and requested != own:
        raise MissingScope(
            f"this API key belongs to workspace {own!r}: it cannot act on workspace "
            f"{requested[:100]!r}",
            param="workspace_id",
        )
    return own


def check_grants(principal: Principal, scopes: Iterable[str]) -> None:
    """Refuse to grant a scope the caller does not hold (no escalation through new keys).

    :raises MissingScope: naming the first such scope (403).
    """
    for scope in scopes:
        if not principal.allows(scope):
            raise MissingScope(
                f"this API key cannot grant scope {scope!r}: it does not hold it", param="scopes"
            )


def check_holds(principal: Principal, scopes: Iterable[str], what: str) -> None:
    """Refuse to act on an API key holding a scope the caller lacks: rotating it would hand
    the caller its secret, re-enabling or changing it would act with powers it has not got.

    :raises MissingScope: naming the first such scope (403).
    """
    for scope in scopes:
        if not principal.allows(scope):
            raise MissingScope(
                f"this API key cannot {what} a key holding scope {scope!r}: it does not hold "
                "it itself",
                param="scopes",
            )


def check_future(expires_at: datetime | None) -> None:
    """An expiry being set must lie ahead.

    :raises InvalidRequest: it is in the past (400).
    """
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidRequest(
            "expires_at is in the past: give a future time (or disable the record instead)",
            param="expires_at",
            code="invalid_body",
        )

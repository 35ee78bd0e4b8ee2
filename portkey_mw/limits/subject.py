"""Whose limits a request counts against: a :class:`Subject`.

An API key, a virtual key or a metadata value (``metadata.team = "search"``) with rate
limits, a budget or both. Subjects are built once per record version (when the catalog
loads it, or when a plan is compiled), never per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from portkey_mw.limits.spec import Budget, RateLimit

SubjectKind = Literal["api_key", "virtual_key", "metadata"]


@dataclass(frozen=True, slots=True)
class Subject:
    """One owner of rate limits and a budget.

    :param key: the backend's name for it, stable across versions of the record:
        ``api_key:<id>``, ``virtual_key:<id>``, ``metadata:team=search``.
    :param owner: how messages name it: ``API key 'ci'``, ``virtual key 'prod'``,
        ``metadata budget 'search' (team=search)`` (a name, never a secret).
    :param kind: what it is.
    :param ref: the id (API key), slug (virtual key) or policy name (metadata) an admin
        uses to point at it.
    """

    key: str
    owner: str
    kind: SubjectKind
    ref: str
    limits: tuple[RateLimit, ...] = ()
    budget: Budget | None = None

    @property
    def empty(self) -> bool:
        """True when there is nothing to enforce or count."""
        return not self.limits and self.budget is None

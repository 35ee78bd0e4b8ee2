"""The subjects of spend control, built from the records and the server file.

An API key's and a virtual key's rate limits and budget are parsed here once per record
version; a metadata policy's once at start-up. Parsing again what the admin API already
validated guards against records written by another version or straight into the store:
such a record's requests are refused (503, naming the record), never let through
unlimited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from portkey_mw.config.server import MetadataBudget
from portkey_mw.errors import GatewayError
from portkey_mw.limits.spec import parse_budget, parse_rate_limits
from portkey_mw.limits.subject import Subject, SubjectKind
from portkey_mw.store.records import ApiKey, VirtualKey

log = structlog.get_logger("portkey_mw.spend")


class InvalidLimits(GatewayError):
    """A stored record's limits cannot be read: its requests are refused until an admin
    fixes them (503: the operator's mistake, not the client's)."""

    status = 503
    code = "invalid_limits"


def _subject(
    kind: SubjectKind,
    key: str,
    owner: str,
    ref: str,
    usage_limits: Mapping[str, Any] | None,
    rate_limits: Sequence[Mapping[str, Any]] | None,
    anchor: float | None,
) -> Subject:
    try:
        limits = parse_rate_limits(rate_limits)
        budget = parse_budget(usage_limits, anchor)
    except ValueError as exc:
        log.error("stored limits cannot be read", subject=key, error=str(exc))
        raise InvalidLimits(
            f"the limits of {owner} cannot be read ({exc}); an admin must fix them"
        ) from None
    return Subject(key, owner, kind, ref, limits, budget)


def _created(record: ApiKey | VirtualKey) -> float | None:
    return record.created_at.timestamp() if record.created_at is not None else None


def api_key_limits(record: ApiKey) -> Subject:
    """The API key as a subject, with or without limits (the admin API shows both).

    :raises InvalidLimits: the record's limits cannot be read.
    """
    return _subject(
        "api_key",
        f"api_key:{record.id}",
        f"API key {record.name!r}",
        record.id,
        record.usage_limits,
        record.rate_limits,
        _created(record),
    )


def virtual_key_limits(record: VirtualKey) -> Subject:
    """The virtual key as a subject, with or without limits.

    :raises InvalidLimits: the record's limits cannot be read.
    """
    return _subject(
        "virtual_key",
        f"virtual_key:{record.id}",
        f"virtual key {record.slug!r}",
        record.slug,
        record.usage_limits,
        record.rate_limits,
        _created(record),
    )


def api_key_subject(record: ApiKey) -> Subject | None:
    """The API key's limits and budget (``None``: it has neither, nothing to enforce).

    :raises InvalidLimits: the record's limits cannot be read.
    """
    subject = api_key_limits(record)
    return None if subject.empty else subject


def virtual_key_subject(record: VirtualKey) -> Subject | None:
    """The virtual key's limits and budget (``None``: it has neither).

    :raises InvalidLimits: the record's limits cannot be read.
    """
    subject = virtual_key_limits(record)
    return None if subject.empty else subject


def _same(value: Any, wanted: str | int | bool) -> bool:
    # Metadata values arrive as JSON: 1 and "1" are one value to an operator; True is not 1.
    if isinstance(wanted, bool) or isinstance(value, bool):
        return value is wanted or (isinstance(value, str) and value.lower() == str(wanted).lower())
    return value == wanted or str(value) == str(wanted)


class MetadataPolicies:
    """The server file's ``limits.metadata`` budgets, and which apply to a request.

    A policy's periods (``periodic_reset_days``) count from 1970-01-01 00:00 UTC: a policy
    has no record whose creation could anchor them, and every replica must agree.
    """

    def __init__(self, policies: Sequence[MetadataBudget]) -> None:
        self._policies: list[tuple[tuple[tuple[str, str | int | bool], ...], Subject]] = []
        for policy in policies:
            label = policy.label
            name = policy.name or label
            owner = (
                f"metadata budget {name!r} ({label})"
                if policy.name
                else f"metadata budget {label!r}"
            )
            subject = _subject(
                "metadata",
                f"metadata:{label}",
                owner,
                name,
                policy.usage_limits,
                policy.rate_limits,
                0.0,
            )
            if not subject.empty:
                self._policies.append((tuple(sorted(policy.match.items())), subject))

    def __bool__(self) -> bool:
        return bool(self._policies)

    @property
    def subjects(self) -> list[Subject]:
        """Every policy, in the file's order."""
        return [subject for _, subject in self._policies]

    def find(self, name: str) -> Subject | None:
        """The policy called ``name`` (or, unnamed, ``team=search``)."""
        return next((s for s in self.subjects if s.ref == name), None)

    def matching(self, metadata: Mapping[str, Any]) -> list[Subject]:
        """The policies whose every key ``metadata`` carries with the wanted value."""
        if not metadata:
            return []
        return [
            subject
            for match, subject in self._policies
            if all(key in metadata and _same(metadata[key], value) for key, value in match)
        ]

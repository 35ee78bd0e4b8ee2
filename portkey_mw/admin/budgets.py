"""The operator's view of every budget: what ``/v1/admin/budgets`` lists and resets, and
``/v1/admin/limits`` (the backend's state).

Every subject with a budget or rate limits is listed -- API keys, virtual keys (from the
store), the server file's metadata budgets -- each as the usage object of
:mod:`portkey_mw.admin.usage`, read from the backend (a few at a time: with Redis, one
round trip each).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from portkey_mw.admin.schemas import Strict, parse_body
from portkey_mw.admin.services import SpendView
from portkey_mw.admin.usage import read_usage, reset_usage
from portkey_mw.errors import GatewayError, InvalidRequest, NotFound
from portkey_mw.limits.subject import Subject
from portkey_mw.spend.subjects import (
    api_key_limits,
    api_key_subject,
    virtual_key_limits,
    virtual_key_subject,
)
from portkey_mw.store.protocols import ControlStore

#: Subjects whose usage is read at once (Redis round trips in flight).
READ_BATCH = 32


class ResetTarget(Strict):
    """``POST /v1/admin/budgets/reset``: which budget to start over."""

    kind: Literal["api_key", "virtual_key", "metadata"]
    #: the API key's id, the virtual key's slug or the metadata budget's name
    ref: str = Field(min_length=1, max_length=300)


class BudgetsAdmin:
    """The ``/v1/admin`` budget routes' work, over the gateway's spend control and store.

    :param store: where API keys and virtual keys live (None: only metadata budgets).
    """

    def __init__(self, spend: SpendView, store: ControlStore | None) -> None:
        self.spend = spend
        self.store = store

    async def _subjects(self) -> tuple[list[tuple[Subject, str]], list[dict[str, Any]]]:
        """Every subject with limits and its name; and the records whose stored limits
        cannot be read (listed apart, named, so that the operator sees them)."""
        found: list[tuple[Subject, str]] = []
        unreadable: list[dict[str, Any]] = []
        spend = self.spend
        if self.store is not None:
            for key in await self.store.list_api_keys(None):
                try:
                    subject = api_key_subject(key)
                except GatewayError as exc:
                    unreadable.append({"kind": "api_key", "ref": key.id, "message": exc.message})
                    continue
                if subject is not None:
                    found.append((subject, key.name))
            for record in await self.store.list_virtual_keys(None):
                try:
                    subject = virtual_key_subject(record)
                except GatewayError as exc:
                    unreadable.append(
                        {"kind": "virtual_key", "ref": record.slug, "message": exc.message}
                    )
                    continue
                if subject is not None:
                    found.append((subject, record.name))
        found.extend((subject, subject.ref) for subject in spend.policies.subjects)
        return found, unreadable

    async def list_usage(self) -> dict[str, Any]:
        """``GET /v1/admin/budgets``: every subject's usage object."""
        subjects, unreadable = await self._subjects()
        data: list[dict[str, Any]] = []
        for start in range(0, len(subjects), READ_BATCH):
            batch = subjects[start : start + READ_BATCH]
            data.extend(
                await asyncio.gather(*(read_usage(self.spend, s, name) for s, name in batch))
            )
        backend = self.spend.backend
        return {
            "object": "list",
            "total": len(data),
            "data": data,
            "invalid": unreadable,
            "backend": backend.name,
            "degraded": backend.degraded,
        }

    async def reset(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/admin/budgets/reset``: start one budget's period over.

        :raises InvalidRequest: a bad body (400), or a subject without a budget
            (``no_budget``).
        :raises NotFound: no such API key, virtual key or metadata budget (404, naming it).
        """
        target = parse_body(ResetTarget, dict(body), "budget reset")
        ref = target.ref
        if "\x00" in ref:
            raise InvalidRequest("ref holds a NUL character", param="ref")
        subject, name = await self._find(target.kind, ref)
        return await reset_usage(self.spend, subject, name)

    async def _find(self, kind: str, ref: str) -> tuple[Subject, str]:
        shown = ref[:100]
        if kind == "metadata":
            policy = self.spend.policies.find(ref)
            if policy is None:
                names = ", ".join(repr(s.ref) for s in self.spend.policies.subjects[:20])
                raise NotFound(
                    f"no metadata budget {shown!r} in the server file "
                    f"(limits.metadata: {names or 'none'})",
                    param="ref",
                    code="metadata_budget_not_found",
                )
            return policy, policy.ref
        if kind == "api_key":
            key = await self.store.get_api_key(ref) if self.store is not None else None
            if key is None:
                raise NotFound(f"no API key {shown!r}", param="ref", code="api_key_not_found")
            return api_key_limits(key), key.name
        record = await self.store.get_virtual_key(ref) if self.store is not None else None
        if record is None:
            raise NotFound(f"no virtual key {shown!r}", param="ref", code="virtual_key_not_found")
        return virtual_key_limits(record), record.name

    def limits(self) -> dict[str, Any]:
        """``GET /v1/admin/limits``: the backend's state, the policies, the alerts."""
        return self.spend.health()

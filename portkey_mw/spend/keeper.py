"""Budget usage kept across restarts: written to the store in batches, read back at start.

Every ``limits.persist_interval`` seconds (and at shutdown) the usage of the budgets
charged or reset since the last write goes to the store in one call; never a write per
request. A write that fails (the store is down) is kept and merged into the next one. At
start-up the stored usage of the current periods is loaded into the backend, which only
ever raises usage with it (see :meth:`~portkey_mw.limits.LimitBackend.load_usage`).

What a crash can lose is the usage charged since the last write: at most one interval's.
With Redis, usage lives in Redis as well, and only a Redis that lost its data as well
falls back to the store's copy.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from portkey_mw.limits.backend import LimitBackend
from portkey_mw.limits.results import UsageEntry
from portkey_mw.logging import traceback_text
from portkey_mw.store.protocols import ControlStore

log = structlog.get_logger("portkey_mw.spend")


class UsageKeeper:
    """Moves usage between the limits backend and the store.

    :param store: the control-plane store; None: usage lives only as long as the backend.
    """

    def __init__(self, backend: LimitBackend, store: ControlStore | None, interval: float):
        self.backend = backend
        self.store = store
        self.interval = interval
        self._unsaved: dict[tuple[str, str], UsageEntry] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        #: batches written (for tests and the admin state)
        self.writes = 0

    async def start(self) -> None:
        """Load the stored usage, then write every interval."""
        if self.store is None:
            return
        try:
            entries = await self.store.load_usage(self.backend.clock())
        except Exception as exc:
            # The gateway still starts: budgets go on from what the backend holds (Redis
            # keeps its own), and the next write puts this process's usage back.
            log.error("budget usage could not be loaded from the store", error=type(exc).__name__)
        else:
            taken = await self.backend.load_usage(entries)
            if entries:
                log.info("budget usage loaded", entries=len(entries), taken=taken)
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name="portkey-mw-usage-keeper"
        )

    async def flush(self) -> None:
        """Write what changed since the last write, now."""
        if self.store is None:
            return
        for entry in await self.backend.usage_snapshot():
            self._unsaved[(entry.subject, entry.type)] = entry  # the newest wins
        if not self._unsaved:
            return
        batch = list(self._unsaved.values())
        try:
            await self.store.save_usage(batch)
        except Exception as exc:
            if not self._failing:
                log.warning(
                    "budget usage could not be written to the store; kept for the next try",
                    error=type(exc).__name__,
                    entries=len(batch),
                )
                self._failing = True
            return
        if self._failing:
            log.info("budget usage written to the store again", entries=len(batch))
            self._failing = False
        self.writes += 1
        for entry in batch:
            key = (entry.subject, entry.type)
            if self._unsaved.get(key) is entry:
                del self._unsaved[key]

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception as exc:  # a backend bug must not end the loop
                log.error("budget usage write failed", exception=traceback_text(exc))

    async def aclose(self) -> None:
        """Stop the loop and write the last usage."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

"""What the log, feedback, export and analytics routes use: the log store's queries, the
feedback and export tables, where export files go, and the export tasks in flight.

The gateway builds one :class:`LogServices` when its SQL log store is open
(``logging.store: sql``); with the store off, the routes answer 503 saying so.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portkey_mw.errors import GatewayError
from portkey_mw.logstore.exports import ExportStore
from portkey_mw.logstore.feedback import FeedbackStore
from portkey_mw.logstore.query import LogQueries

__all__ = ["DOWNLOAD_SECONDS", "LogServices", "LogStoreOff"]

#: How long an export's download link works.
DOWNLOAD_SECONDS = 900.0
#: At most this many download links are live at once (older ones are dropped first).
MAX_LINKS = 10_000


class LogStoreOff(GatewayError):
    """The SQL log store is off, so there are no logs to query (503)."""

    status = 503
    type = "api_error"
    code = "log_store_off"

    def __init__(self) -> None:
        super().__init__(
            "the log store is off (logging.store: off): request logs, feedback, exports "
            "and analytics need logging.store: sql"
        )


@dataclass(slots=True)
class LogServices:
    """The log store as the admin routes see it.

    :param queries: reads and inserts of request logs.
    :param feedback: the feedback table.
    :param exports: the log-export table.
    :param export_dir: where export files are written (made on first use, mode 0700).
    """

    queries: LogQueries
    feedback: FeedbackStore
    exports: ExportStore
    export_dir: Path
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    #: download token -> (export id, expiry on the monotonic clock)
    links: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: export ids whose task was asked to stop
    stopping: set[str] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` off the request; kept referenced until it ends."""
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def aclose(self) -> None:
        """Stop the export tasks still running (their exports stay ``in_progress``)."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def new_link(self, export_id: str) -> str:
        """A fresh random download token for ``export_id``, valid DOWNLOAD_SECONDS."""
        now = time.monotonic()
        for token, (_, expiry) in list(self.links.items()):
            if expiry <= now:
                del self.links[token]
        while len(self.links) >= MAX_LINKS:
            del self.links[next(iter(self.links))]
        token = secrets.token_urlsafe(32)
        self.links[token] = (export_id, now + DOWNLOAD_SECONDS)
        return token

    def link_export(self, token: str) -> str | None:
        """The export a live token opens, or ``None`` (unknown or expired)."""
        found = self.links.get(token)
        if found is None:
            return None
        export_id, expiry = found
        if expiry <= time.monotonic():
            del self.links[token]
            return None
        return export_id

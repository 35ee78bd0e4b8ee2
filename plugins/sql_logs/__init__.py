"""The SQL log store's sink: every request's record into ``request_logs`` of the control
plane's database, and retention of what is there.

Active when ``logging.store`` is ``sql`` and the control-plane store is enabled. It has an
engine of its own on the store's URL (so a slow log write never holds a connection the
control plane needs) and migrates on its first write; the gateway opens, and so
migrates, the control store before the log dispatcher starts, so that is usually a
revision check.

Errors are not swallowed: :meth:`SQLLogSink.write` raises when the database refuses or
cannot be reached, and the dispatcher keeps the batch and tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from portkey_mw import hookimpl
from portkey_mw.config.server import LoggingOptions, ServerSettings
from portkey_mw.interfaces import LogSink
from portkey_mw.logevents import LogEvent
from portkey_mw.logstore import LogQueries
from portkey_mw.logstore.retention import prune
from portkey_mw.store.protocols import StoreUnavailable
from portkey_mw.store.sql.engine import make_engine, resolve_url
from portkey_mw.store.sql.migrate import migrate

log = structlog.get_logger("portkey_mw.sql_logs")

#: Retention runs after this many batches, or this many seconds, whichever comes first.
PRUNE_EVERY_BATCHES = 100
PRUNE_EVERY_SECONDS = 60.0


class SQLLogSink(LogSink):
    """Writes each batch of log records in one transaction, and prunes now and then.

    :param url: the resolved database URL (the control-plane store's).
    :param options: the ``logging`` settings (retention bounds).
    :param clock: monotonic seconds (tests pass their own).
    """

    name = "sql-logs"

    def __init__(
        self,
        url: str,
        options: LoggingOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._engine = make_engine(url)
        self._options = options
        self._clock = clock
        self._migrated = False
        self._batches = 0
        self._pruned_at: float | None = None
        #: the queries over what this sink writes (``Gateway.log_queries``)
        self.log_queries = LogQueries(self._engine)

    async def write(self, events: Sequence[LogEvent]) -> None:
        """Insert ``events``; raises :class:`StoreUnavailable` if the database fails
        (nothing of the batch stays)."""
        try:
            await self._insert(events)
        except StoreUnavailable as exc:
            message = str(exc)  # worded without the URL's password, SQL or parameters
        except Exception as exc:
            message = f"the log store refused a batch ({type(exc).__name__})"
        else:
            return
        # A fresh exception, raised outside the handler: the dispatcher logs tracebacks
        # with their frames' locals, and the failed call's frames hold the database URL.
        raise StoreUnavailable(message)

    async def _insert(self, events: Sequence[LogEvent]) -> None:
        if not self._migrated:
            await migrate(self._engine, self._url)
            self._migrated = True
        await self.log_queries.insert([event.to_dict() for event in events])
        self._batches += 1
        if self._prune_due():
            await self.prune()

    def _prune_due(self) -> bool:
        if not (self._options.retention_days or self._options.max_records):
            return False
        now = self._clock()
        # The first batch prunes: a restarted gateway may find a long backlog.
        return (
            self._pruned_at is None
            or self._batches >= PRUNE_EVERY_BATCHES
            or now - self._pruned_at >= PRUNE_EVERY_SECONDS
        )

    async def prune(self) -> int:
        """Apply retention now; a failure is logged, not raised (the batch is stored, and
        the next prune deletes what this one could not).

        :returns: how many records were deleted.
        """
        self._batches, self._pruned_at = 0, self._clock()
        try:
            return await prune(
                self._engine,
                retention_days=self._options.retention_days,
                max_records=self._options.max_records,
            )
        except Exception as exc:
            # The store's errors are worded without SQL or parameters; others by type only.
            log.warning("log retention failed", error=type(exc).__name__)
            return 0

    async def aclose(self) -> None:
        """Close the engine's connections."""
        await self._engine.dispose()


@hookimpl
def register_log_sinks(register: Callable[[LogSink], None], settings: ServerSettings) -> None:
    """Register the SQL log sink when the log store is on and there is a store."""
    if settings.logging.store != "sql" or not settings.store.enabled:
        return
    register(SQLLogSink(resolve_url(settings.store.url), settings.logging))

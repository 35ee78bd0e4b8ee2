"""A slow JSON-lines log sink, as an entry-point plugin a ``portkey-mw serve`` subprocess
loads (tests/test_log_dispatch.py installs it for the subprocess with a ``.dist-info``
folder on ``PYTHONPATH``).

Settings: ``plugins.settings["test-file-sink"]`` = ``{"path": ..., "delay": seconds}``. Each
batch waits ``delay`` before it is appended, one line per record: the trace id and the
wall-clock time of the write (so a test can tell a record written after SIGTERM).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from portkey_mw import LogEvent, LogSink, ServerSettings, hookimpl

PLUGIN_NAME = "test-file-sink"


class SlowFileSink(LogSink):
    """Appends each batch to a file, ``delay`` seconds after it is handed over."""

    name = "file"

    def __init__(self, path: Path, delay: float) -> None:
        self.path = path
        self.delay = delay

    async def write(self, events: Sequence[LogEvent]) -> None:
        await asyncio.sleep(self.delay)
        written = time.time()
        lines = b"".join(
            orjson.dumps({"trace_id": event.trace_id, "written": written}) + b"\n"
            for event in events
        )
        with self.path.open("ab") as file:
            file.write(lines)


@hookimpl
def register_log_sinks(register: Callable[[LogSink], None], settings: ServerSettings) -> None:
    """Register the sink when the server file configures it."""
    options = settings.plugins.settings.get(PLUGIN_NAME)
    if options:
        register(SlowFileSink(Path(options["path"]), float(options.get("delay", 0))))

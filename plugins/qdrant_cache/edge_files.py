"""The edge shard's directory: claimed by one index at a time, set aside when unreadable.

Beside ``<dir>`` live ``<dir>.lock`` (an ``flock`` held while an index has the shard open:
two writers on one shard would corrupt it), ``<dir>.build`` (a copy being indexed by
:mod:`.edge_build`) and ``<dir>.previous`` (the shard just replaced by an indexed copy, until
it is deleted). A crash can leave the last two behind; :func:`recover` tidies them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

log = structlog.get_logger("portkey_mw.cache")


def sibling(directory: Path, suffix: str) -> Path:
    """``<directory><suffix>``, in the same parent."""
    return directory.with_name(directory.name + suffix)


def make_private(directory: Path) -> None:
    """Create ``directory`` (and its parents) readable by its owner only."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def claim(directory: Path) -> IO[bytes] | None:
    """Hold ``<directory>.lock`` exclusively; ``None`` when another index holds it."""
    make_private(directory.parent)
    descriptor = os.open(sibling(directory, ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    handle = os.fdopen(descriptor, "wb")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def release(handle: IO[bytes] | None) -> None:
    """Let another index claim the directory."""
    if handle is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def recover(directory: Path) -> None:
    """Finish or undo a swap a crash interrupted, and drop an unfinished build."""
    previous = sibling(directory, ".previous")
    if previous.exists():
        if directory.exists():
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(previous, directory)
    shutil.rmtree(sibling(directory, ".build"), ignore_errors=True)


def holds_shard(directory: Path) -> bool:
    """Whether ``directory`` has anything of a shard in it (else a new one is created)."""
    return directory.is_dir() and any(directory.iterdir())


def set_aside(directory: Path, error: BaseException) -> Path:
    """Move an unreadable shard to ``<directory>.corrupt-<UTC timestamp>``, log where, and
    return that path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = sibling(directory, f".corrupt-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = sibling(directory, f".corrupt-{stamp}-{number}")
    os.replace(directory, target)
    log.error(
        "semantic cache index unreadable: moved aside, starting empty",
        path=str(directory),
        moved_to=str(target),
        error=str(error) or type(error).__name__,
    )
    return target

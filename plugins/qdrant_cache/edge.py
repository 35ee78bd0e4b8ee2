"""Qdrant's embedded engine (qdrant-edge-py): every scope in one shard, on disk, with HNSW.

One shard holds every entry. Keyword payload indexes on ``scope`` and ``namespace`` keep a
search inside its scope (and make ``clear`` one filtered delete); a float index on
``expires_at`` lets a search skip what has expired, and a sweep — every ``SWEEP_EVERY``
stores, or ``SWEEP_INTERVAL`` seconds — delete it. Each entry's point id and integer ``seq``
payload count up from the oldest, so eviction past ``max_entries`` is one range delete
(``seq`` below a cut-off), taking ``max_entries // 20`` more than needed so that it runs once
per that many stores, not on every one.

Building the HNSW graph holds the GIL for as long as it runs (minutes at 100,000 entries),
so it never runs in this process. Once ``index_after`` entries have been stored since the
last build, :meth:`EdgeStore._build` flushes the shard and copies it (stores wait for the
copy; searches do not), indexes the copy in a child process (:mod:`.edge_build`) while the
live shard keeps answering and storing, then swaps the indexed copy in and replays onto it
what was stored or deleted meanwhile (a journal of the update operations, applied in order,
so the result is the same). Only the swap — close, rename, load — holds up searches.

Every shard call runs on the store's one private thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

import structlog

from portkey_mw.errors import PluginMissingDependency

from . import edge_files
from .edge_files import sibling

log = structlog.get_logger("portkey_mw.cache")

#: expired entries are deleted once per this many stored entries...
SWEEP_EVERY = 1000
#: ... or when a store comes this many seconds after the last sweep
SWEEP_INTERVAL = 300.0
#: fields the search returns (the scope and expiry are only filtered on)
RETURNED = ["value", "question"]
BUILDER = Path(__file__).with_name("edge_build.py")

T = TypeVar("T")


def unreadable(error: BaseException) -> bool:
    """Whether ``error`` is qdrant-edge failing to read a shard: it raises plain
    ``Exception``, and a Rust panic reaches Python as pyo3's ``PanicException``, which
    derives from ``BaseException``."""
    return isinstance(error, Exception) or type(error).__name__ == "PanicException"


def wall_clock() -> float:
    """``time.time()``, looked up at each call."""
    return time.time()


class EdgeStore:
    """A persistent semantic index on one qdrant-edge shard (see the module docstring).

    :param path: the shard's directory; ``None`` for a temporary one, deleted on close
    :param clock: seconds since the epoch (default :func:`wall_clock`; tests pass a clock
        they move)
    """

    def __init__(
        self,
        path: Path | None,
        *,
        dim: int,
        max_entries: int,
        index_after: int,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.path = path
        self.dim = dim
        self.max_entries = max(1, max_entries)
        self.index_after = max(1, index_after)
        self.clock = clock or wall_clock
        #: seconds the last index build took (copy, child process, swap), once one finished
        self.last_build_seconds: float | None = None
        #: index builds finished since open
        self.builds = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portkey-mw-edge")
        self._closed = False
        self._shard: Any = None
        self._directory: Path | None = None
        self._temporary: Path | None = None
        self._lock_file: IO[bytes] | None = None
        self._opening: asyncio.Future[None] | None = None
        # Stores, deletions and the copy for a build take turns; searches never wait for it.
        self._writes = asyncio.Lock()
        self._journal: list[Any] | None = None
        self._build_task: asyncio.Task[None] | None = None
        self._builder: asyncio.subprocess.Process | None = None
        self._count = 0
        self._next_seq = 0
        self._unindexed = 0
        self._stores_since_sweep = 0
        self._last_sweep = 0.0

    # -- plumbing ------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _config(self) -> Any:
        import qdrant_edge as qe

        # Segments past this size get an HNSW graph when a build runs: index_after entries.
        indexing_kb = max(1, self.index_after * self.dim * 4 // 1024)
        return qe.EdgeConfig(
            # fastembed's vectors are unit length: the dot product is the cosine similarity.
            vectors=qe.EdgeVectorParams(size=self.dim, distance=qe.Distance.Dot),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=indexing_kb),
        )

    @property
    def building(self) -> bool:
        """Whether an index build is under way."""
        return self._build_task is not None and not self._build_task.done()

    @property
    def indexing_elsewhere(self) -> bool:
        """Whether the child process building the index is running right now."""
        return self._builder is not None and self._builder.returncode is None

    @property
    def entries(self) -> int:
        """Entries stored, expired ones not yet swept included."""
        return self._count

    # -- opening -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the shard, then start an index build if one is due. Never raises
        for a bad directory: an unreadable shard is set aside and replaced by an empty one,
        a directory in use or unusable by a temporary one (each logged)."""
        if self._shard is not None:
            return
        try:
            import qdrant_edge  # noqa: F401 - a missing package is not a corrupt index
        except ImportError as exc:
            raise PluginMissingDependency("qdrant-cache", "semantic", exc) from exc
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._run(self._open))
        await asyncio.shield(self._opening)
        if self._unindexed >= self.index_after:
            self.start_build()

    def _open(self) -> None:
        directory = self._choose_directory()
        try:
            self._open_at(directory)
        except BaseException as exc:
            if not unreadable(exc):
                raise
            self._close_shard()
            try:
                edge_files.set_aside(directory, exc)
            except OSError as move_error:
                log.error(
                    "semantic cache index unreadable and cannot be moved aside: "
                    "using a temporary directory",
                    path=str(directory),
                    error=str(move_error),
                )
                directory = self._temporary_directory()
            edge_files.make_private(directory)
            self._open_at(directory)

    def _open_at(self, directory: Path) -> None:
        self._directory = directory
        self._shard = self._load(directory)
        self._prepare()

    def _choose_directory(self) -> Path:
        if self.path is None:
            return self._temporary_directory()
        try:
            edge_files.make_private(self.path.parent)
            self._lock_file = edge_files.claim(self.path)
            if self._lock_file is None:
                log.warning(
                    "semantic cache index in use by another process or index: "
                    "using a temporary directory",
                    path=str(self.path),
                )
                return self._temporary_directory()
            edge_files.recover(self.path)
            edge_files.make_private(self.path)
        except OSError as exc:
            log.error(
                "semantic cache directory unusable: using a temporary directory",
                path=str(self.path),
                error=str(exc),
            )
            edge_files.release(self._lock_file)
            self._lock_file = None
            return self._temporary_directory()
        return self.path

    def _temporary_directory(self) -> Path:
        if self._temporary is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="portkey-mw-semantic-"))
        return self._temporary / "shard"

    def _load(self, directory: Path) -> Any:
        import qdrant_edge as qe

        if not edge_files.holds_shard(directory):
            return qe.EdgeShard.create(str(directory), self._config())
        # A shard made for another vector size fails here too ("incompatible"): set aside.
        return qe.EdgeShard.load(str(directory), self._config())

    def _prepare(self) -> None:
        """Payload indexes, the next sequence number, a first sweep; damage that loading
        missed (a truncated file) shows here, on the first reads."""
        import qdrant_edge as qe

        shard = self._shard
        for field, schema in (
            ("scope", qe.PayloadSchemaType.Keyword),
            ("namespace", qe.PayloadSchemaType.Keyword),
            ("expires_at", qe.PayloadSchemaType.Float),
            ("seq", qe.PayloadSchemaType.Integer),
        ):
            shard.update(qe.UpdateOperation.create_field_index(field, schema))
        newest, _ = shard.scroll(
            qe.ScrollRequest(
                limit=1, order_by=qe.OrderBy("seq", direction=qe.Direction.Desc), with_payload=True
            )
        )
        self._next_seq = int(newest[0].payload["seq"]) + 1 if newest else 0
        self._sweep()
        info = shard.info()
        self._unindexed = max(0, info.points_count - info.indexed_vectors_count)

    # -- searching and storing -------------------------------------------------------------

    def candidates(
        self, vector: list[float], scope: str, threshold: float, limit: int
    ) -> list[tuple[float, dict[str, Any]]]:
        """(blocking) The ``limit`` best live entries of ``scope`` at or above
        ``threshold``, best first, as (score, payload) pairs."""
        import qdrant_edge as qe

        within = qe.Filter(
            must=[
                qe.FieldCondition("scope", match=qe.MatchValue(scope)),
                qe.FieldCondition("expires_at", range=qe.RangeFloat(gt=self.clock())),
            ]
        )
        points = self._shard.query(
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(vector),
                filter=within,
                with_payload=qe.PayloadSelector.Include(RETURNED),
                score_threshold=threshold,
            )
        )
        return [(float(point.score), point.payload or {}) for point in points]

    async def search(
        self, vector: list[float], scope: str, threshold: float, limit: int
    ) -> list[tuple[float, dict[str, Any]]]:
        """:meth:`candidates` on the store's thread."""
        await self.open()
        return await self._run(self.candidates, vector, scope, threshold, limit)

    async def add(self, vector: list[float], payload: dict[str, Any]) -> None:
        """Store one entry (``payload`` without ``seq``, which this adds); evict, sweep and
        start an index build when due."""
        await self.open()
        async with self._writes:
            await self._run(self._add, vector, payload)
        if self._unindexed >= self.index_after and not self.building:
            self.start_build()

    async def add_batch(self, entries: list[tuple[list[float], dict[str, Any]]]) -> None:
        """Store many entries in one update (filling an index for a benchmark); like
        :meth:`add`, except that it starts no index build (:meth:`start_build` does)."""
        await self.open()
        async with self._writes:
            await self._run(self._add_points, entries)

    def _add(self, vector: list[float], payload: dict[str, Any]) -> None:
        self._add_points([(vector, payload)])

    def _add_points(self, entries: list[tuple[list[float], dict[str, Any]]]) -> None:
        import qdrant_edge as qe

        points = []
        for vector, payload in entries:
            seq = self._next_seq
            self._next_seq += 1
            points.append(qe.Point(seq, vector, {**payload, "seq": seq}))
        self._apply(qe.UpdateOperation.upsert_points(points))
        self._count += len(points)
        self._unindexed += len(points)
        self._stores_since_sweep += len(points)
        if self._count > self.max_entries:
            self._evict()
        if (
            self._stores_since_sweep >= SWEEP_EVERY
            or self.clock() - self._last_sweep >= SWEEP_INTERVAL
        ):
            self._sweep()

    def _apply(self, operation: Any) -> None:
        self._shard.update(operation)
        if self._journal is not None:
            self._journal.append(operation)

    def _recount(self) -> None:
        import qdrant_edge as qe

        self._count = self._shard.count(qe.CountRequest(exact=True))

    def _evict(self) -> None:
        import qdrant_edge as qe

        # seq only grows, so at most `keep` entries have seq >= next_seq - keep.
        keep = self.max_entries - self.max_entries // 20
        oldest = qe.FieldCondition("seq", range=qe.RangeFloat(lt=self._next_seq - keep))
        self._apply(qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[oldest])))
        self._recount()

    def _sweep(self) -> None:
        import qdrant_edge as qe

        now = self.clock()
        expired = qe.FieldCondition("expires_at", range=qe.RangeFloat(lte=now))
        self._apply(qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[expired])))
        self._recount()
        self._stores_since_sweep = 0
        self._last_sweep = now

    async def clear(self, namespace: str | None) -> int:
        """Delete one namespace's entries (``None``: all); return how many there were."""
        await self.open()
        async with self._writes:
            return await self._run(self._clear, namespace)

    def _clear(self, namespace: str | None) -> int:
        import qdrant_edge as qe

        which = qe.Filter(
            must=[qe.FieldCondition("namespace", match=qe.MatchValue(namespace))]
            if namespace is not None
            else []
        )
        removed = int(self._shard.count(qe.CountRequest(exact=True, filter=which)))
        self._apply(qe.UpdateOperation.delete_points_by_filter(which))
        self._recount()
        return removed

    # -- building the index in another process -------------------------------------------

    def start_build(self) -> None:
        """Start building the index now (in the background) unless a build is under way."""
        if self._shard is not None and not self.building:
            self._build_task = asyncio.get_running_loop().create_task(self._build())

    async def indexed(self) -> int:
        """Entries the HNSW graph covers (the others are searched by brute force)."""
        await self.open()
        return await self._run(lambda: int(self._shard.info().indexed_vectors_count))

    async def wait_built(self) -> None:
        """Wait for the index build under way, if any (benchmarks and tests)."""
        if self._build_task is not None:
            await asyncio.shield(self._build_task)

    async def _build(self) -> None:
        assert self._directory is not None
        live, copy = self._directory, sibling(self._directory, ".build")
        started = time.monotonic()
        try:
            async with self._writes:
                await self._run(self._begin_journal)
                await asyncio.to_thread(shutil.rmtree, copy, True)
                # Searches go on during the copy; stores wait (they would change the files).
                await asyncio.to_thread(shutil.copytree, live, copy)
            self._builder = await asyncio.create_subprocess_exec(
                sys.executable,
                str(BUILDER),
                str(copy),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, errors = await self._builder.communicate()
            code, self._builder = self._builder.returncode, None
            if code != 0:
                log.warning(
                    "semantic cache index build failed: searching the unindexed shard",
                    path=str(live),
                    exit_code=code,
                    error=errors.decode(errors="replace")[-500:],
                )
                self._unindexed = 0  # tried again after another index_after stores
                return
            async with self._writes:
                await self._run(self._swap, live, copy)
            self.builds += 1
            self.last_build_seconds = time.monotonic() - started
        except asyncio.CancelledError:
            if self._builder is not None:
                self._builder.kill()
                await self._builder.wait()
                self._builder = None
            raise
        except Exception as exc:
            log.warning("semantic cache index build failed", path=str(live), error=str(exc))
            self._unindexed = 0
        finally:
            # A swap cancelled by aclose() still runs on the store's thread: wait for it
            # before deleting what it renames.
            await self._run(lambda: None)
            self._journal = None
            await asyncio.to_thread(shutil.rmtree, copy, True)
            await asyncio.to_thread(shutil.rmtree, sibling(live, ".previous"), True)

    def _begin_journal(self) -> None:
        self._shard.flush()
        self._journal = []

    def _swap(self, live: Path, copy: Path) -> None:
        import qdrant_edge as qe

        journal, self._journal = self._journal or [], None
        previous = sibling(live, ".previous")
        self._shard.close()
        self._shard = None
        live.rename(previous)
        copy.rename(live)
        try:
            shard = qe.EdgeShard.load(str(live), self._config())
        except Exception as exc:
            log.warning("semantic cache index build unusable", path=str(live), error=str(exc))
            live.rename(copy)
            previous.rename(live)
            self._shard = qe.EdgeShard.load(str(live), self._config())
            return
        for operation in journal:
            shard.update(operation)
        self._shard = shard
        self._recount()
        # Entries stored during the build are not in its graph yet (deletions count too:
        # close enough for deciding when to build next).
        self._unindexed = len(journal)

    # -- closing -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop a build, close the shard (flushing it), release the directory. Closing
        twice is closing once (the gateway closes its indexes at shutdown, and so may
        their owner)."""
        if self._closed:
            return
        self._closed = True
        if self._build_task is not None:
            self._build_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._build_task
            self._build_task = None
        if self._opening is not None:
            # An open that failed left nothing to close.
            with contextlib.suppress(Exception):
                await self._opening
        await self._run(self._close)
        self._pool.shutdown(wait=False)

    def _close_shard(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            shard.close()

    def _close(self) -> None:
        self._close_shard()
        edge_files.release(self._lock_file)
        self._lock_file = None
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

"""The durable outbox: every batch written once, one cursor per sink, replay after outages.

Loop side of the outbox (the SQLite side is :mod:`edge_agent.outbox.store`, run on
one worker thread). The pipeline calls :meth:`Outbox.append` once per batch; each
sink runner reads through its own :class:`~edge_agent.outbox.sink_view.SinkView`
(a live lane in memory, a backlog lane read back from the file, and the sink's
cursor: see that module). The views see the outbox only as a
:class:`~edge_agent.outbox.sink_view.SharedLog`.

Writes are group commits on the worker thread: each append is queued in memory and
the writer task, woken by the first, waits ``commit_interval`` (50 ms) for the rest
of the poll tick and commits everything queued in one transaction. Measured
(docs/BENCHMARKS.md): a commit per batch costs 21 µs on the loop with
``synchronous=NORMAL`` and a full fsync (milliseconds on SD cards and eMMC) with
``FULL``; grouped, a row costs about 5 µs, off the loop. Every commit also has a
fixed cost (a worker hand-off, a transaction), which is why twenty devices polled
on the same second should share one commit rather than make twenty.

A cursor move alone does not call for a commit: it rides with the next one, or is
written ``fsync_interval`` after it moved if no batch comes. A cursor written late
only means that, after a crash, what was confirmed meanwhile is sent again (at
least once, docs/OUTBOX.md). ``commit_interval: 0`` restores a commit per wake-up
and a cursor written at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import structlog

import edge_agent.outbox.messages as messages
from edge_agent.config import OutboxConfig
from edge_agent.episodes import Episode
from edge_agent.errors import EdgeAgentError
from edge_agent.model import Pending, SampleBatch
from edge_agent.outbox.queued import read_queued
from edge_agent.outbox.ranges import Delivered, joined_after_late_open
from edge_agent.outbox.sink_view import SinkView
from edge_agent.outbox.store import (
    CursorRow,
    DeadLetter,
    DropResult,
    NewRow,
    OpenState,
    OutboxStore,
    StoreUnavailable,
)
from edge_agent.worker import BlockingWorker

log = structlog.get_logger("edge_agent.outbox")

#: The writer wakes at least this often (age limit, periodic fsync) even when idle.
HOUSEKEEPING_S: Final = 5.0
#: After the budget is exceeded, the oldest are dropped down to this share of it, so
#: that dropping happens in chunks rather than on every append.
LOW_WATER: Final = 0.9
#: Batches kept in memory while the file cannot be written (disk full, I/O error);
#: beyond it the oldest unwritten ones are dropped and counted.
MAX_UNWRITTEN: Final = 200_000
#: Seconds between attempts to write (or to open the file) after a failed one.
WRITE_RETRY_S: Final = 1.0


class OutboxError(EdgeAgentError):
    """The outbox file cannot be opened or created (permissions, a full disk...)."""


class Outbox:
    """The durable log in front of every sink (see the module docstring)."""

    def __init__(
        self,
        config: OutboxConfig,
        path: Path,
        sinks: Sequence[str],
        *,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.path = path
        self._clock_ns = clock_ns
        self._store = OutboxStore(path, config.fsync)
        self._worker = BlockingWorker("outbox")
        self._views = {name: SinkView(self, name, config) for name in sinks}
        self.next_id = 1
        self._pending: list[NewRow] = []
        self._letters: list[DeadLetter] = []
        self._forget: list[str] = []
        #: Wakes the writer: a commit is due (``_due``) or a cursor started waiting.
        self._work = asyncio.Event()
        self._due = False
        #: When the oldest cursor move not yet written happened (None: none waits).
        self._cursors_since: float | None = None
        self._cursor_delay = config.fsync_interval if config.commit_interval > 0 else 0.0
        self._started = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._unsynced = False
        self._last_sync = time.monotonic()
        self._dropping = Episode()  # over budget, until back under half of it
        self._write_failing = Episode()
        #: False while started without the file; then this run's first id.
        self._file_open = False
        self._memory_from: int | None = None
        self._max_age_ns = int(config.max_age * 1e9)
        #: Rows and bytes (bodies plus a per-row overhead) in the file.
        self.rows = 0
        self.bytes = 0
        self.oldest_at_ns: int | None = None
        self.appended_batches = 0
        self.appended_samples = 0
        #: Batches (samples) deleted by the disk budget or age before every sink had them.
        self.dropped_batches = 0
        self.dropped_samples = 0
        #: Batches that could not be stored (a value no sample can hold): skipped.
        self.rejected_batches = 0
        self.write_failures = 0
        self.dead_letters = 0
        #: Batches salvaged from a damaged file at the last start.
        self.recovered_batches = 0
        #: Committed batches found missing at the start (a damaged file or log) that a
        #: sink had not confirmed: in all, and per sink (docs/OUTBOX.md).
        self.lost_batches = 0
        self.lost_by_sink: dict[str, int] = {}
        self.lost_ids = ""

    # ------------------------------------------------------------------ life cycle

    def view(self, sink: str) -> SinkView:
        return self._views[sink]

    def add_sink(self, sink: str) -> SinkView:
        """The view of ``sink``, made if it is new. A sink added while the agent runs (a
        reload) starts at the end of the log, like a sink first seen at start; a changed
        sink keeps its view, and with it its cursor and backlog."""
        view = self._views.get(sink)
        if view is None:
            view = SinkView(self, sink, self.config)
            self._views[sink] = view
            if sink in self._forget:
                # Removed and back before the next commit: its new cursor replaces the
                # old one, which must not be deleted after the new one is written.
                self._forget.remove(sink)
            if self._started.is_set():
                view.start_at_end()
        return view

    def remove_sink(self, sink: str) -> None:
        """Forget ``sink`` (removed from the config; call once its runner has stopped): its
        cursor goes, so it no longer holds rows in the file. What it had not confirmed is
        logged."""
        view = self._views.pop(sink, None)
        if view is None:
            return
        view.freeze()
        if len(view):
            log.warning(
                "sink removed: its undelivered batches are forgotten",
                sink=sink,
                batches=len(view),
            )
        self._forget.append(sink)
        self._commit_soon()

    @property
    def views(self) -> list[SinkView]:
        return list(self._views.values())

    async def started(self) -> None:
        await self._started.wait()

    @property
    def unwritten_batches(self) -> int:
        """Batches appended and not in the file yet (waiting in memory)."""
        return len(self._pending)

    @property
    def corrupt_batches(self) -> int:
        """Stored rows that failed their checksum when read back (never sent)."""
        return self._store.corrupt_rows

    @property
    def write_failing(self) -> bool:
        """True while the file cannot be written (batches wait in memory)."""
        return self._write_failing.active

    @property
    def opened(self) -> bool:
        """True once :meth:`start` has run (until :meth:`close`): the file is open, or is
        being opened again and again while batches wait in memory."""
        return self._started.is_set() and not self._closed

    async def start(self) -> None:
        """Open the file (checking and, if damaged, recovering it) and start writing.

        A file that cannot be opened now (a full disk) is not damage: it is left as it
        is, batches wait in memory and the writer tries again (docs/OUTBOX.md). Raises
        :class:`OutboxError` when the file cannot be opened or made at all.
        """
        try:
            state = await self._worker.call(self._store.open, list(self._views))
        except StoreUnavailable as exc:
            self._start_without_file(exc)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc
        else:
            self._apply_open(state)
        self._writer = asyncio.create_task(self._write_loop(), name="outbox-writer")
        self._started.set()
        for view in self._views.values():
            view.wake()

    def _start_without_file(self, exc: StoreUnavailable) -> None:
        self.next_id = self._memory_from = exc.next_id
        for view in self._views.values():
            view.done = Delivered(self.next_id - 1)
        self._write_failing.begin()
        self.write_failures += 1
        messages.log_cannot_open(self.path, exc.reason, WRITE_RETRY_S, MAX_UNWRITTEN)

    def _apply_open(self, state: OpenState) -> None:
        late = self._memory_from
        if late is not None and state.next_id > late:
            raise OutboxError(f"the outbox {self.path} holds ids from {late} on: not opened")
        if late is None:
            self.next_id = state.next_id
        self.rows, self.bytes, self.oldest_at_ns = state.rows, state.bytes, state.oldest_at_ns
        self.dead_letters += state.dead_letters
        for name, done in state.cursors.items():
            view = self._views[name]
            if late is not None:  # this run's ids are in memory, the sink's view has them
                done = joined_after_late_open(done, state.next_id, late, view.done)
                view.cursor_not_written()
                view.wake()
            view.done = done
        self._file_open = True
        if state.recovery is not None:
            r = state.recovery
            self.recovered_batches = r.batches
            self.lost_batches, self.lost_ids = self.lost_batches + r.lost.count, r.lost.ids
            self.lost_by_sink = r.lost.added_to(self.lost_by_sink)
        backlog = {name: len(view) for name, view in self._views.items()}
        waited = len(self._pending) if late is not None else None
        messages.log_opened(self.path, state, backlog, self.config.fsync, waited)

    async def _open_late(self) -> None:
        """Open the file the start could not open (the writer tries every round)."""
        state = await self._worker.call(self._store.open, list(self._views))
        self._apply_open(state)
        self._commit_soon()

    async def close(self) -> None:
        """Write what is queued, checkpoint, close the file and end the worker thread."""
        if self._closed:
            return
        self._closed = True
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.cancel()
                await asyncio.wait({writer})
            if self._started.is_set():
                try:
                    if not self._file_open:
                        await self._open_late()  # one last try, or what waits is lost
                    await self._flush()
                except Exception as exc:  # noqa: BLE001 - closing goes on; the loss is logged
                    log.error(
                        "outbox: last write failed; unwritten batches are lost",
                        error=f"{type(exc).__name__}: {exc}",
                        batches=len(self._pending),
                    )
                await self._worker.call(self._store.close)
        finally:
            await self._worker.close()

    # ------------------------------------------------------------------ data path

    def append(self, batch: SampleBatch) -> None:
        """Queue ``batch`` for every sink; it is committed by the next group commit."""
        if self._closed:
            raise RuntimeError("the outbox is closed")
        if not self._views:
            return  # every sink was removed (a reload): nobody to keep it for
        seq = self.next_id
        self.next_id += 1
        self._pending.append((seq, self._clock_ns(), batch))
        self.appended_batches += 1
        self.appended_samples += len(batch)
        pending = Pending(seq, batch)
        for view in self._views.values():
            view.push(pending)
        self._commit_soon()
        if self._write_failing.active and len(self._pending) > MAX_UNWRITTEN:
            self._give_up_unwritten(len(self._pending) // 10)

    async def flush(self) -> None:
        """Commit everything queued now (the writer does this on its own; for callers that
        need a batch on disk before they go on, such as tests and benchmarks)."""
        await self._flush()
        await self._enforce_budget()

    def dead_letter(self, sink: str, status: int, error: str, lines: bytes) -> None:
        """Keep points a server refused for good (written with the next commit)."""
        self._letters.append((self._clock_ns(), sink, status, error, lines))
        self.dead_letters += 1
        self._commit_soon()

    def cursor_moved(self) -> None:
        """A view's cursor is to be written: with the next commit, or ``fsync_interval``
        from now if none comes (at once with ``commit_interval: 0``)."""
        if self._cursor_delay <= 0:
            self._commit_soon()
        elif self._cursors_since is None:
            self._cursors_since = time.monotonic()
            self._work.set()  # not a commit: the writer only learns of the deadline

    def _commit_soon(self) -> None:
        """Something must be written: the writer commits it after the commit window."""
        self._due = True
        self._work.set()

    async def read(
        self, gap: tuple[int, int], limit: int, max_samples: int
    ) -> tuple[list[Pending], int]:
        """Backlog rows in ``gap`` (flushing first whatever of it is still queued). What
        cannot be written now (a full disk, a file not open yet) is handed out from
        memory, so a sink behind by more than its live lane still gets it."""
        if self._file_open and self._pending and self._pending[0][0] <= gap[1]:
            with contextlib.suppress(sqlite3.Error, OSError):
                await self._flush()  # on failure the rows are queued again, read below
        else:
            async with self._flush_lock:
                pass  # a commit under way: its rows are in the file or queued again after it
        queued = self._pending[0][0] if self._pending else None
        if not self._file_open or (queued is not None and queued <= gap[0]):
            return read_queued(self._pending, gap, limit, max_samples)
        last = gap[1] if queued is None else min(gap[1], queued - 1)  # the rest is not on disk
        rows, examined = await self._worker.call(self._store.read, gap[0], last, limit, max_samples)
        return [Pending(seq, batch) for seq, batch in rows], examined

    # ------------------------------------------------------------------ writer

    async def _write_loop(self) -> None:
        while True:
            if not await self._wait_for_round():
                continue
            try:
                if not self._file_open:
                    await self._open_late()
                await self._flush()
                await self._enforce_budget()
                if self._unsynced and (
                    time.monotonic() - self._last_sync >= self.config.fsync_interval
                ):
                    await self._worker.call(self._store.sync)
                    self._unsynced = False
                    self._last_sync = time.monotonic()
            except Exception as exc:
                # Disk full, I/O error, or a bug: the writer must not die, or nothing
                # would be written again. Batches wait in memory (bounded) meanwhile.
                self.write_failures += 1
                if self._write_failing.begin():
                    log.error(
                        "outbox cannot write; batches wait in memory and writing is retried",
                        path=str(self.path),
                        error=f"{type(exc).__name__}: {exc}",
                        queued=len(self._pending),
                        exc_info=not isinstance(exc, sqlite3.Error | OSError),
                    )
                await asyncio.sleep(WRITE_RETRY_S)
                self._commit_soon()
                continue
            if self._write_failing.end():
                log.info("outbox writing again", path=str(self.path))

    async def _wait_for_round(self) -> bool:
        """Sleep until the writer has something to do; False if woken only to learn of a
        new deadline (a cursor that moved).

        A round is due when a commit is (then after ``commit_interval``, so that the
        batches of one poll tick, read tens of ms apart, share it), when waiting cursors
        or a pending sync reach ``fsync_interval``, and every ``HOUSEKEEPING_S`` (age
        limit) even when idle.
        """
        now = time.monotonic()
        deadline = now + HOUSEKEEPING_S
        if self._unsynced:
            deadline = min(deadline, self._last_sync + self.config.fsync_interval)
        if self._cursors_since is not None:
            deadline = min(deadline, self._cursors_since + self._cursor_delay)
        try:
            async with asyncio.timeout(max(0.0, deadline - now)):
                await self._work.wait()
        except TimeoutError:
            return True
        self._work.clear()
        if not self._due:
            return False
        if self.config.commit_interval > 0:
            await asyncio.sleep(self.config.commit_interval)
        self._work.clear()  # what was appended meanwhile goes with this commit
        return True

    async def _flush(self) -> None:
        async with self._flush_lock:
            self._due = False
            self._cursors_since = None
            rows, self._pending = self._pending, []
            letters, self._letters = self._letters, []
            forget, self._forget = self._forget, []
            moved = [
                (view, cursor)
                for view in self._views.values()
                if (cursor := view.take_cursor()) is not None
            ]
            cursors: list[CursorRow] = [(view.name, cursor) for view, cursor in moved]
            prune_to = min(
                (view.done.floor for view in self._views.values()), default=self.next_id - 1
            )
            try:
                result = await self._worker.call(
                    self._store.flush, rows, cursors, prune_to, letters, forget
                )
            except asyncio.CancelledError:
                # The worker runs the call to its end anyway (close() waits for it):
                # queueing these rows again would write them twice.
                raise
            except BaseException:
                # Nothing of it was written (one transaction): keep it for the next try.
                self._pending[:0] = rows
                self._letters[:0] = letters
                self._forget[:0] = forget
                for view, _ in moved:
                    view.cursor_not_written()
                if moved:
                    self._cursors_since = time.monotonic()
                if rows or letters or forget:
                    # Due again, and the writer told: a failed flush() or read() must not
                    # leave the rows waiting for the next append or the housekeeping round.
                    self._commit_soon()
                raise
            self.rows += result.rows_added - result.rows_removed
            self.bytes += result.bytes_added - result.bytes_removed
            self.oldest_at_ns = result.oldest_at_ns
            if result.rows_added:
                self._unsynced = self.config.fsync == "interval"
            for seq, error in result.rejected:
                self.rejected_batches += 1
                for view in self._views.values():
                    view.skip(seq, seq)
                self._commit_soon()
                log.error("batch cannot be stored; it is skipped", id=seq, error=error)

    async def _enforce_budget(self) -> None:
        max_bytes = self.config.max_bytes
        cutoff = self._clock_ns() - self._max_age_ns
        too_old = self.oldest_at_ns is not None and self.oldest_at_ns < cutoff
        if self.bytes <= max_bytes and not too_old:
            if self._dropping.active and self.bytes < max_bytes // 2:
                self._dropping.end()
                messages.log_within_budget(self.bytes, self.dropped_batches)
            return
        to_free = self.bytes - int(max_bytes * LOW_WATER) if self.bytes > max_bytes else 0
        cursors = [(view.name, view.done.copy()) for view in self._views.values()]
        result = await self._worker.call(self._store.drop_oldest, to_free, cutoff, cursors)
        if result is not None:
            self._apply_drop(result, "disk budget" if to_free else "age")

    def _apply_drop(self, result: DropResult, reason: str) -> None:
        self.rows -= result.rows
        self.bytes -= result.bytes
        self.oldest_at_ns = result.oldest_at_ns
        self.dropped_batches += result.rows
        self.dropped_samples += result.samples
        for view in self._views.values():
            lost_batches, lost_samples = result.per_sink.get(view.name, (0, 0))
            view.drop_upto(result.upto, lost_batches, lost_samples)
        self._commit_soon()  # persist the moved cursors
        if self._dropping.begin():
            messages.log_dropping(result, reason, self.config, LOW_WATER)

    def _give_up_unwritten(self, count: int) -> None:
        lost, self._pending = self._pending[:count], self._pending[count:]
        self.dropped_batches += len(lost)
        self.dropped_samples += sum(len(batch) for _, _, batch in lost)
        for view in self._views.values():
            view.skip(lost[0][0], lost[-1][0])  # queued ids are consecutive
        messages.log_given_up(len(lost))

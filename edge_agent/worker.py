"""One thread for blocking calls (SQLite, a synchronous HTTP client), driven from the loop.

Why not ``loop.run_in_executor(None, ...)``: the default executor's threads outlive
the object that used them, and the order of calls is not guaranteed. A SQLite
connection wants exactly one thread and calls in submission order (a flush must
reach the file before the read that expects its rows). :class:`BlockingWorker`
gives both: one named thread, a FIFO queue, and :meth:`close` that ends the thread
without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # the caller stopped waiting; the call itself has run
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _release_frames(error: BaseException) -> None:
    """Clear the local variables of the finished frames in ``error``'s tracebacks (and in
    those of the exceptions it was raised from or during).

    Libraries keep exceptions in locals of the frames they were raised through (urllib3
    keeps its connection error while it decides on a retry), and those frames are in the
    exception's own traceback: a cycle, freed only by a full garbage collection, holding
    every frame of the failed call and what it built. An InfluxDB outage made one per
    retry (a request's lines and body, megabytes each) and the agent grew by 120 MB in
    ten minutes. The traceback itself (files, lines) is kept for logging.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        _clear_function_frames(current.__traceback__)
        pending += (current.__cause__, current.__context__)
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions


#: Frames of generators and coroutines: clearing a suspended one would close it (its
#: ``finally`` blocks would run, here, on the worker thread), so they are left alone.
_SUSPENDABLE: Final = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _clear_function_frames(tb: TracebackType | None) -> None:
    """``traceback.clear_frames`` for plain function frames only."""
    while tb is not None:
        frame = tb.tb_frame
        if not frame.f_code.co_flags & _SUSPENDABLE:
            with contextlib.suppress(RuntimeError):  # a frame still running (this thread's)
                frame.clear()
        tb = tb.tb_next


class BlockingWorker:
    """Runs submitted callables one at a time, in order, on its own thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        if self._thread is None:
            # daemon: a process that exits without close() (a crash path) is not held up by
            # a thread blocked in I/O; every write it makes is a transaction anyway.
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the worker thread; its exception is raised here.

        If the awaiting task is cancelled the call still runs to its end (a thread
        cannot be interrupted); only its result is discarded.
        """
        if self._closed:
            raise RuntimeError(f"worker {self.name} is closed")
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((lambda: function(*args), future, loop))
        try:
            return await future
        finally:
            # A raised exception's traceback holds this frame, this frame the future, and
            # the future the exception: a cycle that only a full garbage collection frees,
            # with every frame of the failed call and what it built (an InfluxDB request's
            # lines and body on each retry of an outage) in it. Full collections are rare
            # in a process with millions of long-lived objects, so memory grew with every
            # failed retry (tests/unit/test_worker.py).
            del future

    async def close(self) -> None:
        """Let queued calls finish, then end the thread (without blocking the loop)."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._jobs.put((lambda: None, done, loop))
        self._jobs.put(None)
        # asyncio.wait, not "await done": a cancellation of the caller must propagate,
        # and the thread ends on its own once the sentinel is reached.
        await asyncio.wait({done})
        while thread.is_alive():  # returns within microseconds of the last job
            await asyncio.sleep(0.001)
        thread.join()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            function, future, loop = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = function()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, which decides
                _release_frames(exc)
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_settle, future, result, error)
            # Handed over: hold neither until the next job (a backlog read's rows), nor the
            # error, whose traceback holds this frame (a cycle, see call()).
            job = function = future = loop = result = error = None  # type: ignore[assignment]

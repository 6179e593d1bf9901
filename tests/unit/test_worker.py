"""BlockingWorker: order, errors, and that a failed call leaves no garbage cycle behind.

The cycle matters: a sink whose every retry fails (an InfluxDB outage) raises from the
worker thread each time, and the exception's traceback holds the frames of the failed
call with everything it had built (a request's lines and body, megabytes). If those
frames sit in a reference cycle they wait for a full garbage collection, which in a
process with millions of long-lived objects (a 10,000-tag plant) comes rarely: the
agent's memory grew by 120 MB in a 10-minute outage before the fix.
"""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections.abc import Iterator

import pytest

from edge_agent.worker import BlockingWorker


class Payload:
    """Stands in for the lines of a request: something we can watch die."""


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Only reference counting frees memory here: a cycle would keep objects alive."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_calls_run_in_order_and_return_their_results() -> None:
    worker = BlockingWorker("test-order")
    seen: list[int] = []
    try:
        results = [await worker.call(lambda i=i: seen.append(i) or i * 2) for i in range(5)]
    finally:
        await worker.close()
    assert seen == [0, 1, 2, 3, 4]
    assert results == [0, 2, 4, 6, 8]


async def test_error_of_a_call_is_raised_in_the_caller() -> None:
    worker = BlockingWorker("test-error")

    def fail() -> None:
        raise OSError("connection refused")

    try:
        with pytest.raises(OSError, match="connection refused"):
            await worker.call(fail)
        assert await worker.call(lambda: 42) == 42  # the thread survives a failure
    finally:
        await worker.close()


async def test_failed_call_frees_what_it_built_without_the_garbage_collector(no_gc: None) -> None:
    worker = BlockingWorker("test-cycle")
    watched: list[weakref.ref[Payload]] = []

    def build_then_fail() -> None:
        lines = Payload()  # a local of the failing frame, reachable from the traceback
        watched.append(weakref.ref(lines))
        raise OSError("connection refused")

    try:
        for _ in range(3):
            with contextlib.suppress(OSError):
                await worker.call(build_then_fail)
        await worker.call(lambda: None)  # the thread has let go of its last error too
    finally:
        await worker.close()
    assert [ref() for ref in watched] == [None, None, None]


async def test_error_a_library_keeps_in_its_frame_does_not_pin_that_frame(no_gc: None) -> None:
    """urllib3 keeps the connection error in a local of the frame it passes through, and
    that frame is in the error's traceback: the worker clears such frames."""
    worker = BlockingWorker("test-library-cycle")
    watched: list[weakref.ref[Payload]] = []

    def library_like() -> None:
        lines = Payload()
        watched.append(weakref.ref(lines))
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as error:
            kept = error  # deciding on a retry, say
            raise RuntimeError("max retries exceeded") from kept

    try:
        for _ in range(3):
            with pytest.raises(RuntimeError, match="max retries") as caught:
                await worker.call(library_like)
            # What a log line needs is still there: the chain and where it was raised.
            assert isinstance(caught.value.__cause__, ConnectionRefusedError)
            assert caught.value.__traceback__ is not None
            del caught
        await worker.call(lambda: None)
    finally:
        await worker.close()
    assert [ref() for ref in watched] == [None, None, None]


async def test_result_is_not_held_by_the_worker_after_delivery(no_gc: None) -> None:
    worker = BlockingWorker("test-result")
    try:
        result = await worker.call(Payload)
        ref = weakref.ref(result)
        del result
        await worker.call(lambda: None)  # the thread has certainly finished the first job
        assert ref() is None
    finally:
        await worker.close()


async def test_a_suspended_generator_in_the_error_chain_is_left_running() -> None:
    """Clearing a suspended generator's frame would close it (on Python 3.11): the worker
    clears plain function frames only."""
    worker = BlockingWorker("test-generator")
    caught: list[BaseException] = []

    def producer() -> Iterator[int]:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError as error:
            caught.append(error)
            yield 1  # suspended here, with the error in a local
        yield 2

    values = producer()
    assert next(values) == 1

    def job() -> None:
        raise ValueError("from a generator's error") from caught[0]

    try:
        with pytest.raises(ValueError, match="generator"):
            await worker.call(job)
    finally:
        await worker.close()
    assert next(values) == 2


async def test_an_exception_group_is_released_too(no_gc: None) -> None:
    worker = BlockingWorker("test-group")
    watched: list[weakref.ref[Payload]] = []

    def attempt() -> OSError:
        lines = Payload()
        watched.append(weakref.ref(lines))
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as error:
            kept = error  # in this frame, which is in kept's traceback: a cycle
        return kept

    def library_like() -> None:
        # Raised outside any handler: the attempt's error is reachable only as a member.
        raise ExceptionGroup("both attempts failed", [attempt()])

    try:
        with pytest.raises(ExceptionGroup):
            await worker.call(library_like)
        await worker.call(lambda: None)
    finally:
        await worker.close()
    assert [ref() for ref in watched] == [None]

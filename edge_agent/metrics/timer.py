"""The task that closes metric windows on time, and saves the accumulators.

Samples close windows too (the processor checks the clock on every batch), but a
window must close on time when its device is silent: a dead meter's 15-minute
block is still published, flagged by its coverage. The task sleeps until the next
window is due (at most a second, so that a step of the wall clock is noticed
soon), closes what is due, and hands the metric batches to ``emit`` (the
pipeline). It saves the accumulators every ``save_interval`` seconds and once more
when it is cancelled at stop.

Like a processor in the pipeline, the timer must never stop the agent: a window that
cannot be closed (a bug in a calculator) is logged once with its traceback, then
quietly, and the task keeps trying every second while collection goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from edge_agent.episodes import Episode
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.model import SampleBatch

log = structlog.get_logger("edge_agent.metrics")

#: Longest sleep between two looks at the clock.
MAX_SLEEP_S = 1.0


async def run_metrics_timer(
    processor: MetricsProcessor,
    emit: Callable[[SampleBatch], None],
    *,
    save_interval: float,
    clock: Callable[[], float] = time.time,
) -> None:
    """Close windows as they fall due until cancelled; save on the way out."""
    next_save = clock() + save_interval
    failing = Episode()
    try:
        while True:
            now = clock()
            wait = min(processor.next_deadline(), next_save) - now
            await asyncio.sleep(min(max(wait, 0.0), MAX_SLEEP_S))
            now = clock()
            if now >= processor.next_deadline():
                try:
                    closed = processor.close_due(now)
                except Exception:
                    if failing.begin():
                        log.exception("metric windows could not be closed; retrying quietly")
                    closed = []
                else:
                    if failing.end():
                        log.info("metric windows close again")
                for batch in closed:
                    emit(batch)
            if now >= next_save:
                processor.save()
                next_save = now + save_interval
    finally:
        # Open windows and last counter readings survive the stop: a restart continues
        # them instead of losing (or, from an older save, re-counting) energy.
        processor.save()

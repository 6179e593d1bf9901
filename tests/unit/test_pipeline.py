"""The pipeline: a failing processor costs its own output, never the collection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from structlog.testing import capture_logs

from edge_agent.config.loader import parse_config
from edge_agent.driver import GroupSpec
from edge_agent.metrics.contract import MetricInfo, metric_group
from edge_agent.metrics.events import event_batch
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.runtime.source_runner import SourceRunner


def _batch(value: Value, t_ns: int = 1) -> SampleBatch:
    return SampleBatch("m", "fast", t_ns, ("energy",), [value], [Quality.GOOD], [""])


class Flaky:
    """A processor that raises while ``failing`` is set, and otherwise adds a batch."""

    def __init__(self) -> None:
        self.failing = True
        self.calls = 0

    def __call__(self, batch: SampleBatch) -> Iterable[SampleBatch]:
        self.calls += 1
        if self.failing:
            raise OverflowError("cannot convert float infinity to integer")
        return [batch, _batch(-1.0, batch.timestamp_ns)]


def test_a_raising_processor_is_logged_once_and_the_raw_batch_still_reaches_the_sinks() -> None:
    pipeline = Pipeline()
    flaky = Flaky()
    pipeline.add_processor(flaky)
    received: list[SampleBatch] = []
    pipeline.add_consumer(received.append)
    raw = [_batch(float(i), i + 1) for i in range(3)]
    with capture_logs() as logs:
        for each in raw:
            pipeline.emit(each)
    assert received == raw, "every raw batch flows on while the processor fails"
    assert flaky.calls == 3
    failures = [e for e in logs if e["event"] == "pipeline processor failed"]
    assert len(failures) == 1, "logged once, then quietly until it works again"
    assert failures[0]["log_level"] == "error"
    assert failures[0]["exc_info"] is True
    assert pipeline.processor_errors == 3

    flaky.failing = False
    with capture_logs() as logs:
        pipeline.emit(_batch(9.0, 10))
    assert [e["event"] for e in logs] == ["pipeline processor works again"]
    assert [b.values for b in received[-2:]] == [[9.0], [-1.0]], "its output is back"
    flaky.failing = True
    with capture_logs() as logs:
        pipeline.emit(_batch(10.0, 11))
    assert [e["event"] for e in logs] == ["pipeline processor failed"], "a new failure is news"


PLANT = """
plant: {name: p1, timezone: UTC}
devices:
  - name: m
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: energy, address: 2, type: float64, unit: kWh}
metrics:
  meters:
    - {device: m, counter: {tag: energy}}
"""


class CounterDriver:
    """Reads a float64 energy counter whose second reading is absurd (1e303 kWh)."""

    device = "m"
    connected = True

    def __init__(self) -> None:
        self.groups = [GroupSpec("fast", 0.05, ("energy",))]
        self.values = [100.0, 1e303, float("inf")]
        self.reads = 0

    async def connect(self) -> None:
        pass

    async def read(self, group: str) -> Sequence[SampleBatch]:
        self.reads += 1
        value = self.values.pop(0) if self.values else 100.0 + self.reads
        return (_batch(value, time.time_ns()),)

    def read_budget(self, group: str) -> float:
        return 1.0

    async def close(self) -> None:
        pass


async def test_an_absurd_counter_reading_does_not_stop_the_poller(tmp_path: Path) -> None:
    plant = parse_config(PLANT + f"state_dir: {tmp_path}\n", env={})
    pipeline = Pipeline()
    pipeline.add_processor(MetricsProcessor(plant))
    received: list[SampleBatch] = []
    pipeline.add_consumer(received.append)
    driver = CounterDriver()
    runner = SourceRunner(driver, pipeline.emit)
    task = asyncio.create_task(runner.run(), name="runner")
    for _ in range(200):
        await asyncio.sleep(0.02)
        if driver.reads >= 6 or task.done():
            break
    assert not task.done(), task.exception() if task.done() else None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert driver.reads >= 6
    assert [b.values[0] for b in received[:3]] == [100.0, 1e303, float("inf")]
    assert pipeline.processor_errors == 0, "the counter left the odd readings out itself"


def test_latest_values_are_the_devices_tags_not_its_events_or_metrics() -> None:
    """An event (device = the meter, group ``events``) and a metric window are published
    for the device but are not its tags: the demo's live view showed them as tags."""
    pipeline = Pipeline()
    pipeline.emit(_batch(12.5))
    reason = "m: predicted 48.2 kW, above the contracted limit of 40 kW"
    names = ("predicted_kw", "limit_kw", "shed_kw", "minutes_left")
    values: list[float | None] = [48.2, 40.0, 9.1, 7.5]
    pipeline.emit(
        event_batch("demand_limit", "m", "critical", "start", 2, None, reason, names, values)
    )
    window = MetricInfo("energy", "1m", (0, 60_000_000_000), None)
    pipeline.emit(
        SampleBatch(
            "m", metric_group("1m"), 0, ("energy_kwh",), [1.0], [Quality.GOOD], [""],
            attributes=window.attributes(),
        )
    )  # fmt: skip
    assert list(pipeline.latest("m")) == ["energy"]

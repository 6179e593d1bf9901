"""The metric-batch contract: what output writes is what the sinks read, in the stored layout."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.metrics.contract import AS_OF, MetricInfo, known_at_ns, metric_group, metric_info
from edge_agent.metrics.output import metric_batch
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.influxdb import InfluxSink
from edge_agent.sinks.payload import encode_batch
from tests.influx_support import influx_config, plant_config

START_NS = 1_795_719_600_000_000_000


def _batch(attributes: dict[str, str]) -> SampleBatch:
    return SampleBatch("d", "g", 1, ("a",), [1.0], [Quality.GOOD], [""], attributes=attributes)


@given(
    family=st.text(),
    window=st.text(),
    bounds=st.none() | st.tuples(st.integers(), st.integers()),
    shift=st.none() | st.text(),
    as_of=st.none() | st.integers(),
)
def test_what_is_written_is_read_back(
    family: str,
    window: str,
    bounds: tuple[int, int] | None,
    shift: str | None,
    as_of: int | None,
) -> None:
    info = MetricInfo(family, window, bounds, shift, as_of)
    assert metric_info(_batch(info.attributes())) == info


def test_a_running_windows_figure_is_known_at_its_as_of_a_closed_ones_at_the_end() -> None:
    """``as_of`` is the producer's word that a figure belongs to a window still running
    (the demand guard's poll, a baseline announced during the day), written after
    ``window_end``; without it a figure is a closed window's, known at the window's end,
    also when it is stamped after the window start (no guess from the time)."""
    window = OpenWindow(START_NS, START_NS + 900 * 10**9, "", None)
    closed = metric_batch("m", "15m", window, "energy", ("energy_kwh",), [1.0], 1.0, 0.9)
    assert AS_OF not in closed.attributes
    assert known_at_ns(_info(closed), closed.timestamp_ns) == START_NS + 900 * 10**9
    running = metric_batch("m", "15m", window, "baseline", ("r2",), [0.9], 1.0, 0.0, as_of=START_NS)
    assert list(running.attributes)[-2:] == ["window_end", AS_OF]
    assert running.attributes[AS_OF] == str(START_NS)
    assert known_at_ns(_info(running), running.timestamp_ns) == START_NS
    without_bounds = MetricInfo("energy", "15m", None)
    assert known_at_ns(without_bounds, 7) == 7
    # Not written by this agent: read as a closed window's figure.
    odd = _batch({**MetricInfo("energy", "15m", (1, 2)).attributes(), AS_OF: "soon"})
    assert _info(odd).as_of is None


def _info(batch: SampleBatch) -> MetricInfo:
    info = metric_info(batch)
    assert info is not None
    return info


def test_a_metric_batch_keeps_its_stored_layout() -> None:
    """The attributes are the outbox's and the MQTT payload's format: keys, order, text."""
    window = OpenWindow(START_NS, START_NS + 8 * 3600 * 10**9, "early", None)
    batch = metric_batch("line-1", "shift", window, "energy", ("energy_kwh",), [1.0], 1.0, 0.9)
    assert batch.group == metric_group("shift") == "metrics:shift"
    assert list(batch.attributes.items()) == [
        ("kind", "metrics"),
        ("family", "energy"),
        ("window", "shift"),
        ("window_start", str(START_NS)),
        ("window_end", str(START_NS + 8 * 3600 * 10**9)),
        ("shift", "early"),
    ]
    assert metric_info(batch) == MetricInfo(
        "energy", "shift", (START_NS, START_NS + 8 * 3600 * 10**9), "early"
    )


def test_other_batches_are_not_metrics() -> None:
    assert metric_info(_batch({})) is None
    assert metric_info(SampleBatch.alive("d", "g", 1)) is None
    assert metric_info(_batch({"family": "energy", "window": "15m"})) is None


def test_the_contract_brings_no_calculators_or_config_into_the_sinks() -> None:
    code = (
        "import sys, edge_agent.sinks.payload, edge_agent.runtime.pipeline;"
        "print(sorted(m for m in sys.modules if m.startswith(('edge_agent.metrics', 'pydantic'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == str(["edge_agent.metrics", "edge_agent.metrics.contract"])


async def test_as_of_is_an_attribute_on_mqtt_and_neither_tag_nor_field_in_influxdb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the new attribute changes on the other sinks: the MQTT message carries it in
    ``attributes`` (after ``window_end``) and nothing else moves; InfluxDB writes the same
    line with or without it (its tags are family, window, shift: an attribute never
    becomes a tag or field by accident)."""
    window = OpenWindow(START_NS, START_NS + 900 * 10**9, "", None)
    names = ("predicted_kw", "limit_kw")
    closed = metric_batch("m", "15m", window, "demand_guard", names, [1.0, 2.0], 1.0, 0.9)
    running = metric_batch(
        "m", "15m", window, "demand_guard", names, [1.0, 2.0], 1.0, 0.9, as_of=START_NS + 5
    )
    with_as_of = json.loads(encode_batch(running, "p", "s"))
    without = json.loads(encode_batch(closed, "p", "s"))
    assert with_as_of["attributes"].pop("as_of") == str(START_NS + 5)
    assert with_as_of == without

    written: list[str] = []
    sink = InfluxSink(influx_config("http://127.0.0.1:9"), plant_config())
    monkeypatch.setattr(sink, "_write", lambda lines, *_: written.extend(lines))
    try:
        sink._deliver([running, closed])
    finally:
        await sink.stop()
    assert len(written) == 2
    assert written[0] == written[1]
    assert "as_of" not in written[0]

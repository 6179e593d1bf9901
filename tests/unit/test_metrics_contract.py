"""The metric-batch contract: what output writes is what the sinks read, in the stored layout."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.metrics.contract import MetricInfo, metric_group, metric_info
from edge_agent.metrics.output import metric_batch
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.model import Quality, SampleBatch

START_NS = 1_795_719_600_000_000_000


def _batch(attributes: dict[str, str]) -> SampleBatch:
    return SampleBatch("d", "g", 1, ("a",), [1.0], [Quality.GOOD], [""], attributes=attributes)


@given(
    family=st.text(),
    window=st.text(),
    bounds=st.none() | st.tuples(st.integers(), st.integers()),
    shift=st.none() | st.text(),
)
def test_what_is_written_is_read_back(
    family: str, window: str, bounds: tuple[int, int] | None, shift: str | None
) -> None:
    info = MetricInfo(family, window, bounds, shift)
    assert metric_info(_batch(info.attributes())) == info


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

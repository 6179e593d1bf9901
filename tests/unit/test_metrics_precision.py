"""Metric results are published to documented decimals (docs/METRICS.md, "Precision")."""

from __future__ import annotations

from edge_agent.metrics.output import (
    CROSS_CHECK_NAMES,
    DECIMALS,
    DEMAND_BLOCK_NAMES,
    DEMAND_DAY_NAMES,
    ENERGY_NAMES,
    MACHINE_ENERGY_NAMES,
    UTILIZATION_NAMES,
    metric_batch,
)
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.model import Quality


def test_every_published_metric_has_its_decimals() -> None:
    names = {
        *ENERGY_NAMES,
        *CROSS_CHECK_NAMES,
        *MACHINE_ENERGY_NAMES,
        *DEMAND_BLOCK_NAMES,
        *DEMAND_DAY_NAMES,
        *UTILIZATION_NAMES,
    }
    assert names <= set(DECIMALS)


def test_a_metric_batch_carries_rounded_values() -> None:
    window = OpenWindow(0, 60 * 10**9, "", None)
    names = ("energy_kwh", "mean_kw", "kgce", "kgco2e", "coverage", "late_kwh")
    raw = [0.1 + 0.2, 12.100000000000001 * 60, 0.03687, None, 59 / 60, 0.0004]
    batch = metric_batch("meter", "1m", window, "energy", names, raw, 59 / 60, 0.9)
    assert batch.values == [0.3, 726.0, 0.0369, None, 0.9833, 0.0]
    assert [repr(v) for v in batch.values[:3]] == ["0.3", "726.0", "0.0369"]
    assert batch.qualities == [*[Quality.GOOD] * 3, Quality.UNCERTAIN, *[Quality.GOOD] * 2]

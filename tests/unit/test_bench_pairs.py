"""The paired figure of record (bench/pairs.py): the median of the pairs' own ratios."""

from __future__ import annotations

from typing import Any

import pytest

from bench.pairs import render_pairs, summarise


def pair(
    n: int, agent_us: float, floor_us: float, *, lost: int = 0, p99: float = 100.0
) -> dict[str, Any]:
    return {
        "pair": n,
        "order": ["agent", "floor"] if n % 2 else ["floor", "agent"],
        "agent": {"cpu_us_per_value": agent_us, "peak_rss_mb": 100.0 + n},
        "floor": {"cpu_us_per_value": floor_us, "foreign_cores": 0.1 * n},
        "helpers": {"foreign_cores": 0.05},
        "delivery": {
            "values_lost": lost,
            "sink_unconfirmed": {"mqtt": 0},
            "latency_ms": {"p99": p99},
            "jitter_ms": {"p99": 5.0},
        },
        "agent_floor_ratio": round(agent_us / floor_us, 3),
        "loadavg": {"agent": [1.0, 1.0, 1.0], "floor": [2.0, 1.0, 1.0]},
        "warnings": [],
    }


def test_ratio_is_the_median_of_each_pairs_ratio_not_the_ratio_of_medians() -> None:
    # Ratios 2, 1, 3: median 2. The sides' medians (agent 3, floor 2) would say 1.5.
    pairs = [pair(1, 4.0, 2.0), pair(2, 2.0, 2.0), pair(3, 3.0, 1.0)]
    summary = summarise(pairs)
    assert summary["agent_floor_ratio"] == 2.0
    assert summary["agent_floor_ratio_spread"] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert summary["agent_cpu_us_per_value"] == {"median": 3.0, "min": 2.0, "max": 4.0, "n": 3}
    assert summary["floor_cpu_us_per_value"]["median"] == 2.0


def test_worst_of_the_rest_and_the_load() -> None:
    pairs = [pair(1, 3.0, 2.0, lost=0, p99=90.0), pair(2, 3.0, 2.0, lost=7, p99=300.0)]
    summary = summarise(pairs)
    assert summary["delivery"]["values_lost"] == 7
    assert summary["delivery"]["latency_ms"]["p99"] == 300.0
    assert summary["agent"]["peak_rss_mb"] == 102.0
    assert summary["other_load_cores"]["max"] == 0.2  # the floor window of pair 2
    assert summary["loadavg_1m"] == {"median": 1.5, "min": 1.0, "max": 2.0, "n": 4}


def test_table_names_every_pair_and_the_median_with_its_range() -> None:
    pairs = [pair(1, 3.0, 2.0), pair(2, 4.0, 2.0), pair(3, 2.0, 2.0)]
    record: dict[str, Any] = {
        "scenario": "modbus-scale",
        "params": {"devices": 20, "tags": 500, "interval_s": 1.0, "warmup_s": 5.0, "pairs": 3},
        "window_s": 30.0,
        "pipeline": ["modbus", "mqtt"],
        "pairs": pairs,
        "loadavg_at_start": [1.0, 0.5, 0.2],
        "loadavg_at_end": [1.1, 0.6, 0.3],
        "warnings": [],
        **summarise(pairs),
    }
    text = render_pairs(record)
    assert "median 1.5x (range 1-2, 3 pairs)" in text
    assert "floor,agent" in text
    assert "agent,floor" in text
    assert "at start [1.0, 0.5, 0.2], at end [1.1, 0.6, 0.3]" in text


def without(n: int, side: str) -> dict[str, Any]:
    """A pair whose ``side`` had no CPU per value (the agent delivered nothing, or the
    floor read nothing): no ratio, as run_pairs builds it."""
    gone = pair(n, 3.0, 2.0)
    gone[side]["cpu_us_per_value"] = None
    del gone["agent_floor_ratio"]
    return gone


@pytest.mark.parametrize("side", ["agent", "floor"])
def test_a_pair_without_a_figure_is_left_out_of_the_medians_and_named(side: str) -> None:
    """Before: statistics.median of floats and a None raised TypeError after every pair
    had run (no record, no table); the ratio's median silently counted one pair fewer."""
    pairs = [pair(1, 3.0, 2.0), without(2, side), pair(3, 4.0, 2.0)]
    pairs[1]["delivery"]["values_lost"] = 300_000
    summary = summarise(pairs)
    assert summary["agent_floor_ratio_spread"]["n"] == 2
    assert summary[f"{side}_cpu_us_per_value"]["n"] == 2
    assert summary["delivery"]["values_lost"] == 300_000
    verb = "delivered" if side == "agent" else "read"
    assert summary["warnings"] == [
        f"pair 2: the {side} {verb} nothing (no CPU per value); left out of the median"
    ]
    record: dict[str, Any] = {
        "scenario": "modbus-scale",
        "params": {"devices": 20, "tags": 500, "interval_s": 1.0, "warmup_s": 5.0, "pairs": 3},
        "pairs": pairs,
        **summary,
    }
    text = render_pairs(record)
    assert f"WARNING: pair 2: the {side} {verb} nothing" in text
    assert "2 pairs" in text


def test_a_series_where_no_pair_has_a_figure_still_gives_its_table() -> None:
    pairs = [without(1, "agent"), without(2, "agent")]
    summary = summarise(pairs)
    assert summary["agent_floor_ratio"] is None
    assert summary["agent"]["cpu_us_per_value"] is None
    assert len(summary["warnings"]) == 2

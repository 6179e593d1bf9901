"""The benchmark's accounting: what counts as delivered, lost, late, duplicated.

A benchmark that miscounts is worse than none, so the pure part of the harness
(bench/report.py) is tested like any other code: synthetic subscriber records
against a known schedule.
"""

from __future__ import annotations

import pytest

from bench.report import (
    Window,
    analyse_deliveries,
    analyse_floor,
    check_targets,
    cpu_figures,
    percentiles,
)

S = 1_000_000_000
MS = 1_000_000
T = 1_800_000_000 * S  # a whole second
GROUPS = {("dev000", "g0"): 10, ("dev001", "g0"): 10}


def window(ticks: int = 5, interval_ns: int = S) -> Window:
    # Starts mid-tick, as the harness does: ticks T+1 .. T+ticks seconds are inside.
    return Window(start_ns=T + interval_ns // 2, interval_ns=interval_ns, ticks=ticks)


def record(
    device: str,
    tick: int,
    *,
    late_ms: float = 2.0,
    latency_ms: float = 40.0,
    values: int = 10,
    good: int | None = None,
    historical: bool = False,
) -> list[object]:
    ts = T + tick * S + round(late_ms * MS)
    arrival = ts + round(latency_ms * MS)
    return [arrival, ts, device, "g0", values, values if good is None else good, historical]


def full(ticks: range = range(1, 6)) -> list[list[object]]:
    return [record(d, k) for k in ticks for d in ("dev000", "dev001")]


def test_everything_delivered_once_is_no_loss() -> None:
    result = analyse_deliveries(full(), window(), GROUPS)
    assert result["values_expected"] == 100
    assert result["values_delivered"] == 100
    assert result["values_lost"] == 0
    assert result["ticks_missed"] == 0
    assert result["values_per_s_delivered"] == 20.0
    assert result["jitter_ms"]["p50"] == pytest.approx(2.0)
    assert result["latency_ms"]["p99"] == pytest.approx(40.0)


def test_a_missing_batch_is_lost_values_and_a_missed_tick() -> None:
    records = [r for r in full() if not (r[2] == "dev001" and r[1] == T + 3 * S + 2 * MS)]
    result = analyse_deliveries(records, window(), GROUPS)
    assert result["values_lost"] == 10
    assert result["ticks_missed"] == 1


def test_a_redelivered_batch_counts_once() -> None:
    records = [*full(), record("dev000", 2, latency_ms=900.0)]
    result = analyse_deliveries(records, window(), GROUPS)
    assert result["values_delivered"] == 100
    assert result["batches_duplicated"] == 1
    assert result["values_lost"] == 0


def test_batches_outside_the_window_and_replayed_backlog_do_not_count() -> None:
    records = [
        *full(),
        record("dev000", 0),  # before the window (warm-up)
        record("dev000", 6),  # after it (grace period)
        record("dev001", 3, historical=True),
    ]
    result = analyse_deliveries(records, window(), GROUPS)
    assert result["values_delivered"] == 100
    assert result["batches_duplicated"] == 0


def test_a_read_a_whole_interval_late_shows_as_a_miss_and_a_duplicate() -> None:
    records = [r for r in full() if not (r[2] == "dev000" and r[1] == T + 2 * S + 2 * MS)]
    records.append(record("dev000", 2, late_ms=1005.0))  # taken for tick 3
    result = analyse_deliveries(records, window(), GROUPS)
    assert result["ticks_missed"] == 1
    assert result["batches_duplicated"] == 1
    assert result["values_lost"] == 10


def test_late_reads_keep_their_tick_and_early_wakeups_show_as_negative_jitter() -> None:
    records = full(range(1, 5))
    records += [record("dev000", 5, late_ms=700.0), record("dev001", 5, late_ms=-0.5)]
    result = analyse_deliveries(records, window(), GROUPS)
    assert result["values_lost"] == 0
    assert result["batches_duplicated"] == 0
    assert result["jitter_ms"]["max"] == pytest.approx(700.0)


def test_short_and_bad_batches_are_counted_as_such() -> None:
    records = [r for r in full() if not (r[2] == "dev001" and r[1] == T + 1 * S + 2 * MS)]
    records.append(record("dev001", 1, values=7, good=3))
    result = analyse_deliveries(records, window(), GROUPS)
    assert result["batches_short"] == 1
    assert result["values_lost"] == 3
    assert result["values_bad"] == 4


def test_a_batch_of_an_unknown_group_is_not_a_delivery() -> None:
    records = [*full(), [T + 2 * S, T + 2 * S, "dev009", "g0", 10, 10, False]]
    result = analyse_deliveries(records, window(), GROUPS)
    assert result["batches_unexpected"] == 1
    assert result["values_delivered"] == 100


def test_the_floor_counts_values_of_reads_without_errors() -> None:
    polls = [
        [T + k * S + MS, 30 * MS, d, "g0", 10, 0] for k in range(1, 6) for d in ("dev000", "dev001")
    ]
    polls[3] = [*polls[3][:4], 0, 2]  # a poll with two failed reads
    result = analyse_floor(polls, window(), GROUPS)
    assert result["values_read"] == 90
    assert result["values_missed"] == 10
    assert result["read_errors"] == 2
    assert result["poll_duration_ms"]["p50"] == pytest.approx(30.0)


def test_percentiles_are_observed_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p99": 99.0, "max": 100.0}
    assert percentiles([]) == {"p50": None, "p99": None, "max": None}


def test_cpu_figures_and_targets() -> None:
    figures = cpu_figures(cpu_s=1.5, values=100_000, seconds=10.0)
    assert figures == {
        "cpu_s": 1.5,
        "core_share_pct": 15.0,
        "cpu_us_per_value": 15.0,
        "cpu_s_per_100k_values": 1.5,
    }
    run = {
        "agent": {**figures, "peak_rss_mb": 130.0},
        "delivery": {"values_lost": 0, "latency_ms": {"p99": 80.0}, "jitter_ms": {"p99": None}},
    }
    targets = check_targets(run)
    assert targets["cpu_us_per_value <= 15"] is True
    assert targets["peak_rss_mb <= 120"] is False
    assert targets["agent/floor <= 1.5"] is None  # no floor run
    assert targets["jitter p99 < 20 ms"] is None
    assert targets["values lost == 0"] is True

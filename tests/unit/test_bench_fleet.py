"""The fleet benchmark's loss accounting (bench/fleet_accounting.py)."""

from __future__ import annotations

from bench.fleet_accounting import Arrival, account, resumed_after

S = 1_000_000_000
LAG = 3 * S


def arrival(ts: int, *, at: int | None = None, device: str = "dev000", values: int = 21) -> Arrival:
    return Arrival(
        arrival_ns=ts + S // 100 if at is None else at,
        ts_ns=ts,
        agent="gw000",
        device=device,
        group="g0",
        values=values,
        good=values,
        size=900,
    )


def served_at(*ticks: int) -> dict[tuple[str, str], list[int]]:
    # The simulator answers 2 ms after the agent stamped the read.
    return {("gw000", "dev000"): [t * S + 2_000_000 for t in ticks]}


def test_every_served_read_arrived_is_no_loss() -> None:
    result = account(
        served_at(1, 2, 3), [arrival(t * S) for t in (1, 2, 3)], cut_ns=10 * S, max_lag_ns=LAG
    )
    assert (result.served_required, result.matched, result.lost, result.duplicates) == (3, 3, 0, 0)
    assert result.values_delivered == 63


def test_a_missing_batch_is_lost() -> None:
    result = account(
        served_at(1, 2, 3), [arrival(t * S) for t in (1, 3)], cut_ns=10 * S, max_lag_ns=LAG
    )
    assert result.lost == 1
    assert result.lost_by_agent == {"gw000": 1}
    assert result.lost_examples == [f"gw000/dev000 read served at {2 * S + 2_000_000} ns"]


def test_a_batch_arriving_twice_is_a_duplicate_not_two_deliveries() -> None:
    arrivals = [arrival(S), arrival(2 * S), arrival(2 * S, at=9 * S), arrival(3 * S)]
    result = account(served_at(1, 2, 3), arrivals, cut_ns=10 * S, max_lag_ns=LAG)
    assert (result.lost, result.duplicates, result.batches_distinct) == (0, 1, 3)
    # Latency from the first copy, the one that delivered the values.
    assert max(result.latency_ms) == 10.0


def test_a_duplicate_cannot_stand_in_for_a_lost_batch() -> None:
    arrivals = [arrival(S), arrival(S, at=5 * S), arrival(3 * S)]
    result = account(served_at(1, 2, 3), arrivals, cut_ns=10 * S, max_lag_ns=LAG)
    assert (result.lost, result.duplicates) == (1, 1)


def test_a_batch_of_another_device_does_not_cover_a_loss() -> None:
    arrivals = [arrival(S), arrival(2 * S, device="dev001")]
    result = account(served_at(1, 2), arrivals, cut_ns=10 * S, max_lag_ns=LAG)
    assert result.lost == 1
    assert result.unmatched_batches == 1


def test_a_batch_stamped_long_before_the_read_does_not_match_it() -> None:
    # A batch stamped 5 s before the read was served is some other read (a timeout).
    result = account(served_at(6), [arrival(S)], cut_ns=10 * S, max_lag_ns=LAG)
    assert (result.lost, result.unmatched_batches) == (1, 1)


def test_reads_served_after_the_cut_are_not_required() -> None:
    result = account(served_at(1, 11), [arrival(S)], cut_ns=10 * S, max_lag_ns=LAG)
    assert (result.served_required, result.served_tail, result.lost) == (1, 1, 0)


def test_a_batch_with_values_missing_is_counted_short() -> None:
    result = account(
        served_at(1, 2),
        [arrival(S), arrival(2 * S, values=20)],
        cut_ns=10 * S,
        max_lag_ns=LAG,
        values_per_batch={("gw000", "dev000", "g0"): 21},
    )
    assert result.short_batches == 1


def test_failover_time_is_counted_to_the_first_batch_after_the_kill() -> None:
    arrivals = [arrival(S, at=2 * S), arrival(3 * S, at=9 * S), arrival(4 * S, at=10 * S)]
    assert resumed_after(arrivals, ["gw000", "gw001"], since_ns=5 * S) == {"gw000": 4.0}


def test_latency_of_batches_held_back_by_the_outage_is_reported_apart() -> None:
    arrivals = [arrival(S), arrival(2 * S, at=8 * S), arrival(9 * S)]
    result = account(
        served_at(1, 2, 9), arrivals, cut_ns=10 * S, max_lag_ns=LAG, outage=(2 * S, 8 * S)
    )
    assert result.outage_latency_ms == [6000.0]
    assert result.latency_ms == [10.0, 10.0]

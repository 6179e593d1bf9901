"""The fleet benchmark's loss accounting (bench/fleet_accounting.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from bench.fleet_accounting import Arrival, account, resumed_after

S = 1_000_000_000
LAG = 3 * S


def arrival(
    ts: int,
    *,
    at: int | None = None,
    device: str = "dev000",
    values: int = 21,
    good: bool = True,
) -> Arrival:
    return Arrival(
        arrival_ns=ts + S // 100 if at is None else at,
        ts_ns=ts,
        agent="gw000",
        device=device,
        group="g0",
        values=values,
        good=values if good else 0,
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


def test_a_bad_batch_of_an_unanswered_read_does_not_hide_a_lost_batch() -> None:
    """Ticks at 10, 11, 12, 13 s (1 s interval, 1 s device timeout). The read at 10 got no
    answer (the simulator never logged it; the agent sent the tick as bad values, as it
    does on a timeout). The reads at 11, 12 and 13 were answered 2 ms after their tick;
    the batch of 12 never arrived. One batch is lost.

    Earliest-first matching within the 3 s window paired the read served at 11.002 with
    the bad batch of 10, the read at 12.002 with the batch of 11 (served 1.002 s after its
    stamp, beyond the device timeout, yet good) and 13 with 13: lost 0, unmatched 0.
    Under load (N = 50 on two cores) timeouts are what the report warns of, so this is
    the run in which a loss would go unseen."""
    arrivals = [arrival(10 * S, good=False), arrival(11 * S), arrival(13 * S)]
    result = account(served_at(11, 12, 13), arrivals, cut_ns=20 * S, max_lag_ns=LAG)
    assert result.lost == 1, result.summary()
    assert result.lost_examples == [f"gw000/dev000 read served at {12 * S + 2_000_000} ns"]
    assert (result.matched, result.matched_bad, result.unmatched_batches) == (2, 0, 1)


def test_a_read_is_matched_to_the_latest_batch_before_it_not_the_earliest() -> None:
    """Reads at 1, 2, 3 all arrived, and a bad batch of an unanswered read at 0 is
    within the window of the read served at 1: each read gets its own batch."""
    arrivals = [arrival(0, good=False), *(arrival(t * S) for t in (1, 2, 3))]
    result = account(served_at(1, 2, 3), arrivals, cut_ns=10 * S, max_lag_ns=LAG)
    assert (result.lost, result.matched, result.matched_bad, result.unmatched_batches) == (
        0,
        3,
        0,
        1,
    )


def test_a_read_whose_batch_has_only_bad_values_is_matched_and_counted_apart() -> None:
    """The read at 1 timed out at the agent (bad values) and the simulator logged its
    answer late: matched (its batch arrived), but counted in matched_bad, which the
    report warns of (the logs alone cannot tell it from a loss behind an unanswered read)."""
    served = {("gw000", "dev000"): [S + 1_200_000_000]}
    result = account(served, [arrival(S, good=False)], cut_ns=10 * S, max_lag_ns=LAG)
    assert (result.lost, result.matched, result.matched_bad) == (0, 1, 1)


def test_matched_is_counted_against_the_reads_it_is_reported_with() -> None:
    """render_fleet prints "{served_required} reads served, {matched} matched": matched
    counted the reads served after the cut (served_tail) too, so a run read "33989 reads
    served, 34739 matched", batches from nowhere, and the line was useless as a
    cross-check of ``lost`` (served_required - matched must equal lost)."""
    arrivals = [arrival(1 * S), arrival(11 * S)]
    result = account(served_at(1, 2, 11), arrivals, cut_ns=10 * S, max_lag_ns=LAG)
    assert result.lost == 1
    assert result.served_required - result.matched == result.lost, result.summary()


# ---------------------------------------------------------------- the fleet's broker CPU

#: A node that works before it answers, as a restarted NATS node catches its JetStream
#: streams up (10-35 s, docs/FLEET.md) before it takes MQTT connections.
_CATCHING_UP = (
    "import time, sys\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.4:\n"
    "    pass\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


class _Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def monitor(self, path: str) -> Any:
        return {"connections": []}


class _Cluster:
    """What bench/fleet.py's _kill_and_restart uses of tests/nats_cluster.py: kill_node,
    and start_node, which returns once the node is ready (as NatsCluster.start_node waits
    for a CONNACK)."""

    def __init__(self) -> None:
        self.nodes = [_Node(f"n{i}") for i in range(3)]
        for node in self.nodes:
            self.start_node(node)

    def start_node(self, node: _Node) -> None:
        node.process = subprocess.Popen(
            [sys.executable, "-c", _CATCHING_UP], stdout=subprocess.PIPE
        )
        assert node.process.stdout is not None
        assert node.process.stdout.readline() == b"ready\n"

    def kill_node(self, node: _Node) -> None:
        process, node.process = node.process, None
        if process is not None:
            process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()

    def close(self) -> None:
        for node in self.nodes:
            self.kill_node(node)


def test_broker_cpu_counts_what_the_restarted_node_spends_before_it_answers() -> None:
    """bench/fleet.py, _kill_and_restart: ``cluster.start_node(victim)`` returns once the
    node answers an MQTT CONNECT (tests/nats_cluster.py waits for the CONNACK); a CPU
    baseline taken then leaves out everything the node spent catching up (JetStream
    streams, raft logs: 10-35 s by docs/FLEET.md), the costliest part of a restart, from
    the broker CPU of a --kill-node run and the "CPU per message" the sizing of 10,000
    gateways extrapolates. Here the restarted node burns 0.4 s of CPU before it is ready;
    the meter must see it."""
    from bench.fleet import NodeMeter, _kill_and_restart

    cluster = _Cluster()
    try:
        meter = NodeMeter()
        for node in cluster.nodes:
            meter.begin(node)  # type: ignore[arg-type]
        start = time.time()
        outage = _kill_and_restart(
            cluster,  # type: ignore[arg-type]
            cluster.nodes[0],  # type: ignore[arg-type]
            meter,
            time.time(),
            [],
            lambda line: None,
        )
        for node in cluster.nodes:
            meter.end(node)  # type: ignore[arg-type]
        seconds = time.time() - start
        victim = meter.figures(seconds)[outage.node]
        cpu_s = victim["cpu_pct"] * seconds / 100
        assert cpu_s >= 0.3, f"the restarted node's CPU counted: {cpu_s:.2f} s of about 0.4 s"
    finally:
        cluster.close()

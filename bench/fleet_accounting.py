"""Loss, duplicates and latency of a fleet run: what the simulators served against what arrived.

What an agent collected is known from the simulators, not from the agent: the fleet's
simulator processes (bench/fleet_sims.py) log the wall-clock time of every read request
they answer with data, per agent and device. A read the simulator answered is a poll whose
values the agent had in hand, so each one must come back as a batch at the consumer. That
is the honest ground truth, for three reasons:

* the agent's own ``/metrics`` counters are its account of itself; a bug that drops a
  batch before it counts it, or counts one it never wrote, would hide the very loss the
  benchmark exists to catch (they are read too, as a cross-check, never as the judge);
* the outbox is the agent's too, and it forgets confirmed batches;
* the schedule alone (one batch per tick, as bench/report.py counts for one agent) would
  call a tick the agent skipped under load "lost", when no value was ever read.

Matching, and why it is right. The agent stamps a batch with the time its read *started*;
the simulator logs the time it *answered*. The reads of one device do not overlap (one
connection, one request at a time, no retries; a tick that finds the last read still
running is skipped), so a read answered at ``s`` is the read in progress at ``s``: the
one that started last at or before ``s``. If its batch arrived, it is the *latest*
arrived batch stamped at or before ``s``, whatever else was lost or sent as bad values
around it. So each served read, in order, is matched to the latest batch at or before
it, and only to that one: if that batch is older than ``max_lag`` (the device timeout and
a margin) or already matched to an earlier served read, the read's own batch never
arrived, and the read is lost. Earliest-first matching within the window (what this was
before) is wrong: a neighbouring read's batch (a read the simulator never answered, sent
as bad values) stands in for a lost one, and every later read shifts by one.

What the logs cannot tell apart: a served read whose latest batch carries only bad
values. Either the simulator answered after the agent had given up on the read (a timeout
on a loaded machine: no loss), or the simulator never answered that read and the next
one's batch was lost. Such matches are counted in ``matched_bad`` and the report warns of
them; they are not called lost, and not silently good either.

A served read left without a batch is lost. A batch key (agent, device, group, timestamp)
that arrives more than once counts as duplicates (QoS 1 after a failover may send a batch
the broker had not confirmed again). A batch that no served read claims (a read that
timed out and was sent as bad values) is counted apart.

Reads served after ``cut_ns`` (the end of the measured window, when the harness starts
draining and stopping the agents) are not required: an agent stopped in the middle of a
read may drop it with its cancelled task, which is a shutdown, not a loss in transit.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.report import percentiles

#: A batch stamped a little after its served read is impossible on one clock; allow the
#: rounding of two clock reads.
EARLY_NS = 1_000_000


@dataclass(frozen=True, slots=True)
class Arrival:
    """One data message as the consumer saw it."""

    arrival_ns: int
    ts_ns: int
    agent: str
    device: str
    group: str
    values: int
    good: int
    size: int
    """Payload plus topic bytes."""


@dataclass
class Accounting:
    """The figures of one run's delivery (see the module docstring for their meaning)."""

    served_required: int = 0
    served_tail: int = 0
    #: Required reads (``served_required``) matched to their batch: ``served_required -
    #: matched == lost``. Reads of the tail that matched are not counted.
    matched: int = 0
    #: Of ``matched``: reads whose batch carries only bad values (the module docstring).
    matched_bad: int = 0
    lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    batches_distinct: int = 0
    duplicates: int = 0
    unmatched_batches: int = 0
    values_delivered: int = 0
    values_bad: int = 0
    short_batches: int = 0
    latency_ms: list[float] = field(default_factory=list)
    outage_latency_ms: list[float] = field(default_factory=list)
    lost_by_agent: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        figures = {k: v for k, v in vars(self).items() if not k.endswith("latency_ms")}
        figures["latency_ms"] = percentiles(self.latency_ms)
        figures["outage_latency_ms"] = percentiles(self.outage_latency_ms)
        return figures


def parse_arrivals(records: Iterable[Sequence[Any]]) -> list[Arrival]:
    """Consumer records ``[arrival_ns, ts_ns, agent, device, group, values, good, size]``."""
    return [Arrival(*record) for record in records]


def account(
    served: Mapping[tuple[str, str], Sequence[int]],
    arrivals: Sequence[Arrival],
    *,
    cut_ns: int,
    max_lag_ns: int,
    values_per_batch: Mapping[tuple[str, str, str], int] | None = None,
    latency_window: tuple[int, int] | None = None,
    outage: tuple[int, int] | None = None,
) -> Accounting:
    """Match served reads (``(agent, device) -> served times``) with the arrived batches.

    ``values_per_batch``: (agent, device, group) -> values a complete batch carries; a batch
    with fewer is counted in ``short_batches`` (missing values inside a batch are a loss too).
    ``latency_window``: (start_ns, end_ns) of the batch timestamps whose latency counts
    (the measured window); all first arrivals when None. ``outage``: (start_ns, end_ns) of
    batch timestamps held back by a dead node; their latency goes to ``outage_latency_ms``,
    the rest to ``latency_ms`` (the fleet's steady state).
    """
    out = Accounting()
    first: dict[tuple[str, str, str, int], Arrival] = {}
    copies: Counter[tuple[str, str, str, int]] = Counter()
    for arrival in arrivals:
        key = (arrival.agent, arrival.device, arrival.group, arrival.ts_ns)
        copies[key] += 1
        if key not in first or arrival.arrival_ns < first[key].arrival_ns:
            first[key] = arrival
    out.duplicates = sum(n - 1 for n in copies.values())
    out.batches_distinct = len(first)
    stamps: dict[tuple[str, str], list[tuple[int, bool]]] = defaultdict(list)
    for (agent, device, group, ts), arrival in first.items():
        stamps[(agent, device)].append((ts, arrival.good == 0))
        out.values_delivered += arrival.values
        out.values_bad += arrival.values - arrival.good
        if latency_window is None or latency_window[0] <= ts < latency_window[1]:
            held = outage is not None and outage[0] <= ts < outage[1]
            (out.outage_latency_ms if held else out.latency_ms).append(
                (arrival.arrival_ns - ts) / 1e6
            )
        if values_per_batch is not None:
            expected = values_per_batch.get((agent, device, group))
            if expected is not None and arrival.values < expected:
                out.short_batches += 1
    lost_by_agent: Counter[str] = Counter()
    for source in sorted(served.keys() | stamps.keys()):
        batches = sorted(stamps.get(source, ()))
        starts = [ts for ts, _ in batches]
        claimed = [False] * len(batches)
        for s in sorted(served.get(source, ())):
            # The read in progress at s: the latest batch stamped at or before it.
            k = bisect_right(starts, s + EARLY_NS) - 1
            own = k >= 0 and not claimed[k] and starts[k] >= s - max_lag_ns
            if own:
                claimed[k] = True
            if s >= cut_ns:
                out.served_tail += 1
                continue
            out.served_required += 1
            if own:
                out.matched += 1
                out.matched_bad += batches[k][1]
            else:
                out.lost += 1
                lost_by_agent[source[0]] += 1
                if len(out.lost_examples) < 10:
                    out.lost_examples.append(f"{source[0]}/{source[1]} read served at {s} ns")
        out.unmatched_batches += claimed.count(False)
    out.lost_by_agent = dict(lost_by_agent)
    return out


def resumed_after(
    arrivals: Iterable[Arrival], agents: Iterable[str], since_ns: int
) -> dict[str, float]:
    """Seconds from ``since_ns`` (a node's death) to each agent's first batch arriving after it.

    The failover time as the platform sees it: an MQTT connection that a node's monitor
    lists is not yet a session that delivers (a restarting NATS node accepts the socket
    before its JetStream streams are ready), so time is counted to data, not to a socket.
    Agents with nothing after ``since_ns`` are left out.
    """
    wanted = set(agents)
    first: dict[str, int] = {}
    for arrival in arrivals:
        if arrival.agent not in wanted or arrival.arrival_ns < since_ns:
            continue
        if arrival.agent not in first or arrival.arrival_ns < first[arrival.agent]:
            first[arrival.agent] = arrival.arrival_ns
    return {agent: round((ns - since_ns) / 1e9, 2) for agent, ns in sorted(first.items())}

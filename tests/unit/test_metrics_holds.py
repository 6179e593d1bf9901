"""Steady values of a subscription hold while it lives, and only while it lives."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.model import REASON_DISCONNECTED, Quality, SampleBatch, Value
from edge_agent.runtime.pipeline import Pipeline

S = 1_000_000_000
T0 = 1_800_000_000  # 2027-01-15 08:00:00 UTC, a whole hour

PLANT = """
plant: {name: p1, timezone: UTC}
devices:
  - name: cnc
    driver: opcua
    endpoint: opc.tcp://127.0.0.1:4841
    poll_groups:
      - name: live
        mode: subscribe
        interval: 1s
        tags:
          - {name: state, node: "ns=2;s=state", enum: {0: "off", 1: idle, 2: run, 3: fault}}
          - {name: power, node: "ns=2;s=power", unit: kW, deadband: {type: absolute, value: 0.2}}
          - {name: program, node: "ns=2;s=program"}
metrics:
  windows: [15m]
  grace: 5s
  meters:
    - {name: cncpower, device: cnc, power: {tag: power}}
  machines:
    - {device: cnc, state: {tag: state}}
state_dir: /nonexistent
"""


class Plant:
    """The metrics processor in simulated time, fed like the OPC UA driver feeds it."""

    def __init__(self) -> None:
        self.now = float(T0)
        self.processor = MetricsProcessor(parse_config(PLANT, env={}), clock=lambda: self.now)
        self.out: list[SampleBatch] = []

    def changes(self, t: float, names: tuple[str, ...], values: tuple[Value, ...]) -> None:
        """A change batch handed over at ``t`` (source timestamps ``t`` too)."""
        self.now = t
        stamps = [round(t * S)] * len(names)
        self._feed(
            SampleBatch(
                "cnc",
                "live",
                round(t * S),
                list(names),
                list(values),
                [Quality.GOOD] * len(names),
                [""] * len(names),
                stamps,
            )
        )

    def alive(self, t: float, until: float | None = None) -> None:
        """A quiet hand-over at ``t``: the subscription published at ``until``."""
        self.now = t
        self._feed(SampleBatch.alive("cnc", "live", round((t if until is None else until) * S)))

    def failed(self, t: float) -> None:
        """The scheduler's batch for a failed read (session lost)."""
        self.now = t
        names = ("state", "power", "program")
        self._feed(SampleBatch.all_bad("cnc", "live", round(t * S), names, REASON_DISCONNECTED))

    def tick(self, t: float) -> None:
        self.now = t
        self.out += self.processor.close_due(t)

    def _feed(self, batch: SampleBatch) -> None:
        self.out += [b for b in self.processor(batch) if b is not batch]

    def window(self, family: str, device: str) -> dict[str, Any]:
        (found,) = [
            dict(zip(b.names, b.values, strict=True))
            for b in self.out
            if b.attributes["family"] == family and b.device == device
        ]
        return found


def test_a_steady_value_of_a_live_subscription_holds() -> None:
    """The review's case: 50 kW in run for 10 minutes, then 5 kW idle; only changes sent."""
    plant = Plant()
    plant.changes(T0, ("state", "power", "program"), ("run", 50.0, "P1"))
    for t in range(T0 + 1, T0 + 600):
        plant.alive(t)
    plant.changes(T0 + 600, ("state", "power"), ("idle", 5.0))
    for t in range(T0 + 601, T0 + 906):
        plant.alive(t)
        plant.tick(t)
    energy = plant.window("energy", "cncpower")
    # Trapezoids: the last proof at 50 kW is a second before the change to 5 kW.
    assert energy["energy_kwh"] == pytest.approx((50 * 599 + 27.5 + 5 * 300) / 3600, abs=5e-4)
    assert energy["coverage"] == 1.0
    usage = plant.window("utilization", "cnc")
    assert (usage["run_s"], usage["idle_s"], usage["unknown_s"]) == (600.0, 300.0, 0.0)
    assert usage["coverage"] == 1.0


def test_a_dropped_session_is_a_gap_not_a_held_value() -> None:
    plant = Plant()
    plant.changes(T0, ("state", "power"), ("run", 50.0))
    for t in range(T0 + 1, T0 + 300):
        plant.alive(t)
    # The session drops at 08:05: the watchdog fails the reads; no proof for 5 minutes.
    for t in range(T0 + 302, T0 + 600):
        plant.failed(t)
    # Reconnected: the new subscription sends the current values again, proofs resume.
    plant.changes(T0 + 600, ("state", "power"), ("run", 50.0))
    for t in range(T0 + 601, T0 + 906):
        plant.alive(t)
        plant.tick(t)
    energy = plant.window("energy", "cncpower")
    assert energy["coverage"] == pytest.approx(599 / 900, abs=5e-5)  # 4 decimals
    assert energy["energy_kwh"] == pytest.approx(50 * 599 / 3600, abs=5e-4)
    usage = plant.window("utilization", "cnc")
    assert usage["unknown_s"] == pytest.approx(301.0)


def test_a_silent_subscription_holds_only_up_to_its_last_publish() -> None:
    """Reads go on (the watchdog has not fired yet) but the server stopped publishing."""
    plant = Plant()
    plant.changes(T0, ("state", "power"), ("run", 50.0))
    for t in range(T0 + 1, T0 + 60):
        plant.alive(t)
    for t in range(T0 + 60, T0 + 906):
        plant.alive(t, until=T0 + 59)  # the same last publish, over and over
        plant.tick(t)
    energy = plant.window("energy", "cncpower")
    assert energy["coverage"] == pytest.approx(59 / 900, abs=5e-5)
    assert energy["energy_kwh"] == pytest.approx(50 * 59 / 3600, abs=5e-4)


def test_a_change_stamped_before_the_last_proof_is_not_lost() -> None:
    """The source clock lags the server's by 3 s: the change still counts, from the proof."""
    plant = Plant()
    plant.changes(T0, ("state", "power"), ("run", 50.0))
    for t in range(T0 + 1, T0 + 301):
        plant.alive(t)
    plant.now = T0 + 301
    late = SampleBatch(
        "cnc",
        "live",
        (T0 + 301) * S,
        ["state", "power"],
        ["idle", 5.0],
        [Quality.GOOD] * 2,
        ["", ""],
        [(T0 + 298) * S] * 2,
    )
    plant.out += [b for b in plant.processor(late) if b is not late]
    for t in range(T0 + 302, T0 + 906):
        plant.alive(t)
        plant.tick(t)
    usage = plant.window("utilization", "cnc")
    assert (usage["run_s"], usage["idle_s"]) == pytest.approx((300.0, 600.0))
    energy = plant.window("energy", "cncpower")
    assert energy["coverage"] == 1.0


def test_a_proof_of_life_never_reaches_the_sinks() -> None:
    pipeline = Pipeline()
    plant = Plant()
    pipeline.add_processor(plant.processor)
    received: list[SampleBatch] = []
    pipeline.add_consumer(received.append)
    pipeline.emit(SampleBatch.alive("cnc", "live", T0 * S))
    assert received == []
    assert (pipeline.batches_in, pipeline.latest_batches) == (0, {})


def test_a_first_change_the_metrics_do_not_use_hides_nothing_after_it() -> None:
    plant = Plant()
    plant.changes(T0, ("program",), ("P1",))  # only a tag no unit needs changed first
    plant.changes(T0 + 1, ("state", "power"), ("run", 50.0))
    for t in range(T0 + 2, T0 + 906):
        plant.alive(t)
        plant.tick(t)
    usage = plant.window("utilization", "cnc")
    assert usage["run_s"] == 899.0

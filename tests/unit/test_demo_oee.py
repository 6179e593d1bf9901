"""The demo's OEE cell: "waiting" only before the first part, never a true 0% hidden."""

from __future__ import annotations

from edge_agent.config.loader import parse_config
from edge_agent.demo_screen import oee_cell
from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.live import LiveKpis, _running_demand, live_kpis
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.model import Quality, SampleBatch, Value

S = 1_000_000_000
T0 = 1_800_000_000  # 2027-01-15 08:00:00 UTC, a whole hour
NAMES = ("state", "total", "scrap")

PLANT = """
plant: {name: p1, timezone: UTC}
state_dir: /nonexistent
devices:
  - name: cnc
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: state, address: 0, type: uint16, enum: {0: "off", 1: idle, 2: run}}
          - {name: total, address: 1, type: uint32}
          - {name: scrap, address: 3, type: uint32}
metrics:
  windows: [1m]
  machines:
    - {device: cnc, state: {tag: state}, ideal_cycle_time: 10s, planned: always,
       parts: {total: total, scrap: scrap}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def _machine_after(parts: list[tuple[int, int]]) -> LiveKpis:
    """The cnc's live KPIs after running one second per (total, scrap) reading."""
    clock = Clock()
    processor = MetricsProcessor(parse_config(PLANT, env={}), clock=clock)
    for second, (total, scrap) in enumerate(parts):
        clock.now = T0 + second
        values: list[Value] = ["run", total, scrap]
        batch = SampleBatch(
            "cnc", "fast", round(clock.now * S), NAMES, values, [Quality.GOOD] * 3, [""] * 3
        )
        list(processor(batch))
    (row,) = (r for r in live_kpis(processor) if r.name == "cnc")
    return row


def test_oee_waits_while_no_part_is_made() -> None:
    row = _machine_after([(100, 7)] * 30)
    assert row.oee == 0.0  # by arithmetic: nothing made yet
    assert oee_cell(row, {"cnc"}) == "waiting"


def test_a_true_zero_oee_after_parts_were_made_is_shown_as_zero() -> None:
    """Every part made today was scrap: OEE really is 0 %, and a person must see it."""
    row = _machine_after([(100 + s // 5, 7 + s // 5) for s in range(60)])
    assert row.oee == 0.0
    assert oee_cell(row, {"cnc"}) == "0%"


def test_a_good_oee_is_a_percentage() -> None:
    row = _machine_after([(100 + s // 5, 7) for s in range(60)])
    assert row.oee is not None
    assert row.oee > 0
    assert oee_cell(row, {"cnc"}).endswith("%")


def test_the_running_demand_counts_a_bridged_gap_once() -> None:
    """A counter bridged 5 minutes of a block (its energy known, its time not covered):
    the running demand is the block's energy over the time it is known for, not over the
    covered time only (which showed 30 kW as 45; found by review)."""
    acc = EnergyAcc()
    acc.kwh, acc.touched = 7.5, True  # 15 minutes at 30 kW
    acc.covered_ns, acc.known_ns = 600 * 10**9, 900 * 10**9
    assert _running_demand(acc) == 30.0


def test_a_counter_block_starts_with_the_power_tags_mean_until_a_minute_is_known() -> None:
    """One count of a 0.01 kWh counter in the block's first second is not 36 kW (found
    by the new-user trial): until a minute of the block is known the running demand is
    the integrated power tag's, or not shown without one."""
    acc = EnergyAcc()
    acc.kwh, acc.touched = 0.01, True
    acc.covered_ns = acc.known_ns = 10**9
    assert _running_demand(acc, counted=True) is None
    acc.alt_kwh, acc.alt_covered_ns = 30.0 / 3600, 10**9  # 30 kW for a second
    assert _running_demand(acc, counted=True) == 30.0
    assert _running_demand(acc) == 36.0  # energy from power: already its mean
    acc.kwh, acc.covered_ns, acc.known_ns = 0.5, 60 * 10**9, 60 * 10**9
    assert _running_demand(acc, counted=True) == 30.0

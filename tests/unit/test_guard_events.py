"""demand_limit, idle_energy and meter_stalled events: start, end, no flapping, restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.errors import ConfigError
from edge_agent.metrics.contract import event_info, metric_info
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.model import Quality, SampleBatch, Value

S = 1_000_000_000
T0 = 1_800_000_000  # 2027-01-15 08:00:00 UTC: a block's start
NAMES = ("power", "energy", "state")

PLANT = """
plant: {name: p1, timezone: UTC}
devices:
  - name: m
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: power, address: 0, type: float32, unit: kW}
          - {name: energy, address: 2, type: uint32, scale: 0.01, unit: kWh}
          - {name: state, address: 4, type: uint16, enum: {0: "off", 1: idle, 2: run, 3: fault}}
metrics:
  windows: [15m]
"""
GUARD = """
  meters:
    - device: m
      power: {tag: power}
      demand_guard: {limit_kw: 40, hysteresis: 0.02, min_hold: 30s, quiet_start: 60s}
"""


class Plant:
    """A processor fed one batch per second in simulated time; everything it emits kept."""

    def __init__(self, metrics: str, state_dir: Path | None = None, start: int = T0) -> None:
        text = PLANT + metrics
        self.config = parse_config(text, env={})
        self.now = float(start)
        store = None if state_dir is None else StateStore(state_dir / STATE_FILE)
        self.processor = MetricsProcessor(self.config, clock=lambda: self.now, store=store)
        self.out: list[SampleBatch] = []
        self.counter = 1000.0

    def feed(self, t: float, power: Value, state: Value = "run", energy: Value = None) -> None:
        self.now = t
        if energy is None and isinstance(power, float):
            self.counter += power / 3600
            energy = round(self.counter, 2)
        values: list[Value] = [power, energy, state]
        batch = SampleBatch("m", "fast", round(t * S), NAMES, values, [Quality.GOOD] * 3, [""] * 3)
        self.out += list(self.processor(batch))[1:]
        if t >= self.processor.next_deadline():
            self.out += self.processor.close_due(t)

    def tick(self, t: float) -> None:
        """The metrics timer's look at the clock at ``t`` with no sample (a silent device)."""
        self.now = t
        if t >= self.processor.next_deadline():
            self.out += self.processor.close_due(t)

    def events(self, kind: str = "demand_limit") -> list[dict[str, Any]]:
        found = []
        for b in self.out:
            info = event_info(b)
            if info is not None and info.event == kind:
                values = dict(zip(b.names, b.values, strict=True))
                found.append(
                    {**values, "state": info.state, "severity": info.severity, "ts": b.timestamp_ns}
                )
        return found

    def guard(self) -> list[dict[str, Any]]:
        return [
            dict(zip(b.names, b.values, strict=True))
            for b in self.out
            if (info := metric_info(b)) is not None and info.family == "demand_guard"
        ]


def test_a_guard_batch_says_it_is_a_running_blocks_figure_known_at_its_poll() -> None:
    """Every live ``demand_guard`` batch carries ``as_of`` = its poll, also the poll on the
    block's very first second: its time alone (= the block start there) cannot tell a
    running block's figure from a closed one's (review of the Sparkplug delta since
    939608a: such a batch was taken as known at the block's end)."""
    plant = Plant(GUARD)
    for k in range(3):
        plant.feed(T0 + k, 50.0)
    guards = [b for b in plant.out if (i := metric_info(b)) and i.family == "demand_guard"]
    assert guards
    at_block_start = 0
    for batch in guards:
        info = metric_info(batch)
        assert info is not None
        assert info.bounds is not None
        assert info.as_of == batch.timestamp_ns
        at_block_start += info.bounds[0] == batch.timestamp_ns
    assert at_block_start == 1, "the poll on the block's first second is among them"


def test_no_event_in_the_quiet_start_then_one_with_the_kw_to_shed() -> None:
    plant = Plant(GUARD)
    for k in range(60):
        plant.feed(T0 + k, 50.0)
    assert plant.events() == [], "the first 60 s of a block are quiet"
    plant.feed(T0 + 60, 50.0)
    (start,) = plant.events()
    assert (start["state"], start["severity"], start["ts"]) == ("start", "critical", (T0 + 60) * S)
    assert (start["start_s"], start["end_s"]) == (T0 + 60, None)
    assert start["predicted_kw"] == 50.0
    # 60 s at 50 kW; the rest (840 s) must average (40 x 900 - 50 x 60) / 840 kW.
    allowed = (40 * 900 - 50 * 60) / 840
    assert start["shed_kw"] == pytest.approx(50 - allowed, abs=1e-3)
    assert start["minutes_left"] == 14.0
    assert "shed" in start["reason"]
    assert "40 kW" in start["reason"]


def test_an_agent_started_late_in_a_block_is_quiet_until_it_knows_enough() -> None:
    """Started 4 s before the block ends, the agent knows 4 s of it: a prediction resting
    on 896 s of assumed power is no alarm (found by the new-user trial: a critical event
    "shed 13.7 kW for the 0.1 minutes left"). The next block, known from its start, gets
    its event after the quiet start as usual."""
    start = T0 + 896
    plant = Plant(GUARD, start=start)
    for t in range(start, start + 4):
        plant.feed(t, 50.0)
    assert plant.events() == []
    for t in range(T0 + 900, T0 + 961):
        plant.feed(t, 50.0)
    (event,) = plant.events()
    assert event["start_s"] == T0 + 960


def test_a_prediction_wobbling_at_the_limit_does_not_flap_and_the_end_comes_once() -> None:
    plant = Plant(GUARD)
    for k in range(70):
        plant.feed(T0 + k, 50.0)
    # Power wobbles around the limit: the prediction crosses it, within the hysteresis.
    for k in range(70, 300):
        plant.feed(T0 + k, 41.0 if k % 2 else 39.0)
    predicted = [g["predicted_kw"] for g in plant.guard()[70:200]]
    assert min(predicted) < 40 < max(predicted), "the prediction crosses the limit"
    assert [e["state"] for e in plant.events()] == ["start"], "inside the hysteresis: no end"
    for k in range(300, 400):
        plant.feed(T0 + k, 10.0)
    events = plant.events()
    assert [e["state"] for e in events] == ["start", "end"]
    end = events[1]
    assert end["start_s"] == events[0]["start_s"]
    assert end["ts"] == round(end["end_s"] * S)
    assert end["end_s"] < T0 + 310
    assert end["predicted_kw"] < 40 * 0.98


def test_the_event_ends_with_its_block_even_without_a_poll() -> None:
    plant = Plant(GUARD)
    for k in range(850):
        plant.feed(T0 + k, 50.0)
    plant.now = T0 + 910.0  # the meter went quiet; the block's window closes on time
    plant.out += plant.processor.close_due(plant.now)
    events = plant.events()
    assert [e["state"] for e in events] == ["start", "end"]
    assert events[1]["end_s"] == T0 + 900
    assert events[1]["minutes_left"] == 0.0


def test_energy_above_the_limit_already_is_an_event_even_in_the_quiet_start() -> None:
    plant = Plant(GUARD)
    for k in range(12):
        plant.feed(T0 + k, 4000.0)  # 4 MW for 11 s: 12.2 kWh, above 40 kW x 15 min
    (start,) = plant.events()
    assert start["start_s"] == T0 + 10  # 11.1 kWh at 10 s: the block cannot end below 40 kW
    assert "cannot be avoided" in start["reason"]


def test_an_active_event_survives_a_restart_and_its_start_is_not_sent_again(
    tmp_path: Path,
) -> None:
    first = Plant(GUARD, tmp_path)
    for k in range(120):
        first.feed(T0 + k, 50.0)
    assert [e["state"] for e in first.events()] == ["start"]
    first.processor.save()
    second = Plant(GUARD, tmp_path, start=T0 + 130)
    for k in range(130, 200):
        second.feed(T0 + k, 50.0)
    assert second.events() == [], "the restored event is not started twice"
    for k in range(200, 300):
        second.feed(T0 + k, 5.0)
    (end,) = second.events()
    assert (end["state"], end["start_s"]) == ("end", T0 + 60)


def test_an_event_whose_block_ended_while_the_agent_was_down_ends_at_the_block_end(
    tmp_path: Path,
) -> None:
    first = Plant(GUARD, tmp_path)
    for k in range(120):
        first.feed(T0 + k, 50.0)
    first.processor.save()
    second = Plant(GUARD, tmp_path, start=T0 + 2000)
    second.feed(T0 + 2000, 5.0)
    (end,) = second.events()
    assert (end["state"], end["start_s"], end["end_s"]) == ("end", T0 + 60, T0 + 900)


def test_an_active_demand_event_ends_at_a_restart_that_removed_its_guard(
    tmp_path: Path,
) -> None:
    """A demand_limit event is active when the agent stops, and it restarts with the
    meter's ``demand_guard`` removed. Its end must still go out, or every consumer that
    pairs start and end (the console, an alarm list in SCADA) shows a critical alarm
    forever: it ends when the agent last knew it active (the state's save), with the
    first batch after the restart, and only once (not again at the next restart)."""
    first = Plant(GUARD, tmp_path)
    for k in range(120):
        first.feed(T0 + k, 50.0)
    assert [e["state"] for e in first.events()] == ["start"]
    first.processor.save()  # at T0 + 119
    no_guard = GUARD.replace(
        "      demand_guard: {limit_kw: 40, hysteresis: 0.02, min_hold: 30s, quiet_start: 60s}\n",
        "",
    )
    assert "demand_guard" not in no_guard
    second = Plant(no_guard, tmp_path, start=T0 + 130)
    second.feed(T0 + 130, 50.0)
    (end,) = second.events()
    assert (end["state"], end["severity"]) == ("end", "critical")
    assert (end["start_s"], end["end_s"], end["ts"]) == (T0 + 60, T0 + 119, (T0 + 119) * S)
    assert end["limit_kw"] == 40.0
    assert "no longer configured" in end["reason"]
    for k in range(131, 2000):
        second.feed(T0 + k, 50.0)
    assert len(second.events()) == 1, "sent once"
    third = Plant(no_guard, tmp_path, start=T0 + 2100)
    for k in range(2100, 2200):
        third.feed(T0 + k, 50.0)
    assert third.events() == [], "not again at the next restart"


# --------------------------------------------------------------------------- idle energy

IDLE = """
  machines:
    - device: m
      state: {tag: state}
      energy: {power: {tag: power}}
  events:
    idle_energy: {after: 2m, above_kw: 2}
"""


def test_idle_energy_starts_after_the_delay_and_ends_with_its_kwh() -> None:
    plant = Plant(IDLE)
    for k in range(60):
        plant.feed(T0 + k, 20.0, "run")
    for k in range(60, 200):
        plant.feed(T0 + k, 3.0, "idle")
    (start,) = plant.events("idle_energy")
    assert (start["state"], start["start_s"], start["ts"]) == ("start", T0 + 60, (T0 + 60) * S)
    assert start["idle_minutes"] == 2.0
    assert start["idle_kwh"] == pytest.approx(0.1, abs=1e-3)
    for k in range(200, 230):
        plant.feed(T0 + k, 1.5, "idle")  # still idle, but below the threshold
    events = plant.events("idle_energy")
    assert [e["state"] for e in events] == ["start", "end"]
    end = events[1]
    assert (end["start_s"], end["end_s"]) == (T0 + 60, T0 + 200)
    assert end["idle_kwh"] == pytest.approx(3.0 * 139 / 3600, abs=1e-3)  # 60 .. 199 s
    assert end["idle_minutes"] == pytest.approx(139 / 60, abs=1e-3)


def test_an_idle_energy_event_ends_at_its_last_reading_when_the_machine_goes_silent() -> None:
    """An idle machine is switched off at the mains (or its gateway goes down): no
    reading comes to show the gap, for a weekend maybe. The event ends once the readings
    have been missing for longer than the machine's ``max_gap`` (2.5 s here), at the
    last reading, sent once: the close pass is due then, not only at the next window's
    close."""
    plant = Plant(IDLE)
    for k in range(60):
        plant.feed(T0 + k, 20.0, "run")
    for k in range(60, 300):
        plant.feed(T0 + k, 3.0, "idle")
    assert [e["state"] for e in plant.events("idle_energy")] == ["start"]
    for k in range(300, 303):
        plant.tick(T0 + k)
    assert [e["state"] for e in plant.events("idle_energy")] == ["start", "end"], "on time"
    for k in range(303, 3900):  # an hour without a reading; windows close on time
        plant.tick(T0 + k)
    events = plant.events("idle_energy")
    assert [e["state"] for e in events] == ["start", "end"], "ended once"
    end = events[1]
    assert (end["start_s"], end["end_s"], end["ts"]) == (T0 + 60, T0 + 299, (T0 + 299) * S)
    assert end["idle_minutes"] == pytest.approx(239 / 60, abs=1e-3)
    assert "readings stopped" in end["reason"]


def test_an_idle_event_active_at_a_restart_ends_at_its_last_reading_if_none_came_since(
    tmp_path: Path,
) -> None:
    """The agent stops while a machine idles, and the machine is silent after the
    restart: the restored episode's readings stopped long ago, so the first close pass
    ends it at its last reading (the only close pass due until the next window's)."""
    first = Plant(IDLE, tmp_path)
    for k in range(200):
        first.feed(T0 + k, 3.0, "idle")
    first.processor.save()
    second = Plant(IDLE, tmp_path, start=T0 + 400)
    assert second.processor.next_deadline() <= T0 + 400
    second.tick(T0 + 401)
    (end,) = second.events("idle_energy")
    assert (end["state"], end["start_s"], end["end_s"]) == ("end", T0, T0 + 199)


def test_an_active_idle_event_ends_at_a_restart_that_removed_idle_energy_events(
    tmp_path: Path,
) -> None:
    """The agent restarts with ``metrics.events`` no longer asking for idle_energy while
    a machine's event is active: it ends at its last reading (the last time the
    condition was seen to hold), sent by the first look of the metrics timer even when
    no batch comes (the machine is silent)."""
    first = Plant(IDLE, tmp_path)
    for k in range(200):
        first.feed(T0 + k, 3.0, "idle")
    assert [e["state"] for e in first.events("idle_energy")] == ["start"]
    first.processor.save()
    no_events = IDLE.replace("  events:\n    idle_energy: {after: 2m, above_kw: 2}\n", "")
    assert "idle_energy" not in no_events
    second = Plant(no_events, tmp_path, start=T0 + 400)
    assert second.processor.next_deadline() <= T0 + 400, "a close pass is due at once"
    second.tick(T0 + 401)
    (end,) = second.events("idle_energy")
    assert (end["state"], end["severity"]) == ("end", "warning")
    assert (end["start_s"], end["end_s"]) == (T0, T0 + 199)
    assert end["idle_minutes"] == pytest.approx(199 / 60, abs=1e-3)
    for k in range(402, 2000):
        second.tick(T0 + k)
    assert len(second.events("idle_energy")) == 1


def test_short_idle_spells_are_no_event() -> None:
    plant = Plant(IDLE)
    for k in range(1200):
        plant.feed(T0 + k, 3.0, "idle" if (k // 90) % 2 else "run")
    assert plant.events("idle_energy") == []


def test_per_machine_rules_replace_the_plant_rule() -> None:
    plant = Plant(
        IDLE.replace("above_kw: 2}", "above_kw: 2, machines: {m: {after: 10s, above_kw: 1}}}")
    )
    for k in range(30):
        plant.feed(T0 + k, 1.5, "idle")
    assert [e["state"] for e in plant.events("idle_energy")] == ["start"]


def test_an_override_for_an_unknown_machine_is_a_config_error() -> None:
    bad = IDLE.replace("above_kw: 2}", "above_kw: 2, machines: {nope: {after: 1m, above_kw: 1}}}")
    with pytest.raises(ConfigError, match=r"'nope' is not one of metrics\.machines"):
        parse_config(PLANT + bad, env={})


# --------------------------------------------------------------------------- stalled meter

STALLED = """
  meters:
    - device: m
      counter: {tag: energy, resolution: 0.1}
      power: {tag: power}
  events:
    meter_stalled: {after: 2m, min_kw: 0.5}
"""


def test_a_counter_standing_still_under_power_is_a_stalled_meter() -> None:
    plant = Plant(STALLED)
    for k in range(30):
        plant.feed(T0 + k, 10.0)
    frozen = round(plant.counter, 2)
    for k in range(30, 200):
        plant.feed(T0 + k, 10.0, energy=frozen)  # the CT fell off: power reads, counter stops
    (start,) = plant.events("meter_stalled")
    assert start["state"] == "start"
    assert start["severity"] == "warning"
    assert T0 < start["start_s"] < T0 + 30  # the counter's last move (it counts 0.1 kWh)
    assert start["stalled_minutes"] >= 2.0
    assert start["power_kw"] == 10.0
    plant.feed(T0 + 200, 10.0, energy=frozen + 1.0)
    events = plant.events("meter_stalled")
    assert [e["state"] for e in events] == ["start", "end"]
    assert events[1]["end_s"] == T0 + 200
    assert "counts again" in events[1]["reason"]


def test_a_stalled_meter_event_ends_at_its_last_reading_when_the_meter_goes_silent() -> None:
    """A stalled meter's readings stop (its gateway is down): the event ends once they
    have been missing for longer than the counter's ``max_gap``, at the last reading,
    once; not when (or if) a reading comes again."""
    plant = Plant(STALLED)
    for k in range(30):
        plant.feed(T0 + k, 10.0)
    frozen = round(plant.counter, 2)
    for k in range(30, 200):
        plant.feed(T0 + k, 10.0, energy=frozen)
    assert [e["state"] for e in plant.events("meter_stalled")] == ["start"]
    for k in range(200, 1800):
        plant.tick(T0 + k)
    events = plant.events("meter_stalled")
    assert [e["state"] for e in events] == ["start", "end"]
    assert events[1]["end_s"] == T0 + 199
    assert "readings stopped" in events[1]["reason"]
    plant.feed(T0 + 1800, 10.0, energy=frozen)  # back, still stalled: a new episode
    assert [e["state"] for e in plant.events("meter_stalled")] == ["start", "end"]


def test_a_slow_counter_at_low_power_is_not_stalled() -> None:
    """0.6 kW counts 0.1 kWh every 10 minutes: two minutes without a count is normal."""
    plant = Plant(STALLED)
    for k in range(900):
        plant.feed(T0 + k, 0.6)
    assert plant.events("meter_stalled") == []
    for k in range(900, 1400):
        plant.feed(T0 + k, 0.3)  # below min_kw: never a stall
    assert plant.events("meter_stalled") == []

"""Equipment models: determinism, exact ground truth, rollover; profile and encoding rules."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.equipment import (
    MACHINE_QUANTITIES,
    METER_QUANTITIES,
    Machine,
    MachineState,
    PowerMeter,
    Simulation,
)
from simulators.machine import CncParams, CompressorParams, PressParams
from simulators.meter import MeterParams
from simulators.profile import PROFILES_DIR, ProfileError, build_simulation, parse_profile
from simulators.registers import encode
from simulators.schema import Value
from simulators.shifts import ShiftCalendar, ShiftWindow
from simulators.stepping import UJ_PER_KWH

# 2023-11-14 00:00:00 UTC, a Tuesday: shifts below are relative to this midnight.
MIDNIGHT = 1_699_920_000.0
HOUR = 3600.0
MORNING = MIDNIGHT + 6 * HOUR  # first shift starts


def cnc(seed: int = 7, start: float = MORNING, **params: Any) -> Machine:
    return Machine(CncParams(kind="cnc", **params), seed=seed, start=start)


def series(model: Machine | PowerMeter, times: list[float]) -> list[dict[str, Value]]:
    out = []
    for t in times:
        model.advance_to(t)
        out.append(model.read())
    return out


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_series_and_different_seed_differs() -> None:
    times = [MORNING + 7.5 * i for i in range(1, 2000)]
    assert series(cnc(seed=1), times) == series(cnc(seed=1), times)
    assert series(cnc(seed=1), times) != series(cnc(seed=2), times)


@settings(max_examples=25, deadline=None)
@given(increments=st.lists(st.floats(0.0005, 900.0), min_size=1, max_size=30))
def test_values_do_not_depend_on_how_time_was_stepped(increments: list[float]) -> None:
    """A poller reading often and a test jumping once must see the same plant."""
    stepped, jumped = cnc(seed=3), cnc(seed=3)
    t = MORNING
    for dt in increments:
        t += dt
        stepped.advance_to(t)
    jumped.advance_to(t)
    assert stepped.read() == jumped.read()
    assert stepped.truth() == jumped.truth()


def test_time_never_runs_backwards() -> None:
    machine = cnc()
    machine.advance_to(MORNING + 100)
    before = (machine.read(), machine.truth())
    machine.advance_to(MORNING + 50)
    assert (machine.read(), machine.truth()) == before
    assert machine.now == MORNING + 100


# ----------------------------------------------------------------------------- machine truth


def test_truth_energy_is_the_integral_of_the_reported_power() -> None:
    machine = Machine(PressParams(kind="press"), seed=11, start=MORNING)
    step_s = machine.step_ms / 1000
    exact_uj = 0
    approx_kwh = []
    for k in range(3 * 3600):
        machine.advance_to(MORNING + k * step_s)
        exact_uj += machine.power_mw * machine.step_ms
        approx_kwh.append(machine.power_kw * step_s / 3600)
    machine.advance_to(MORNING + 3 * 3600)
    truth = machine.truth()
    assert truth.energy_uj == exact_uj
    assert math.isclose(truth.energy_kwh, math.fsum(approx_kwh), rel_tol=1e-12)
    assert truth.energy_kwh > 0


def test_truth_energy_inside_a_step_is_linear() -> None:
    machine = cnc()
    machine.advance_to(MORNING + 10)
    at_boundary, power = machine.truth().energy_uj, machine.power_mw
    machine.advance_to(MORNING + 10.25)
    assert machine.truth().energy_uj == at_boundary + power * 250


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32), hours=st.floats(0.001, 26.0))
def test_state_times_sum_to_elapsed_and_parts_add_up(seed: int, hours: float) -> None:
    machine = cnc(seed=seed, start=MIDNIGHT + 5 * HOUR)
    machine.advance_to(MIDNIGHT + 5 * HOUR + hours * HOUR)
    truth = machine.truth()
    assert sum(truth.ms_in_state.values()) == truth.elapsed_ms
    assert math.isclose(sum(truth.seconds_in_state.values()), truth.elapsed_s)
    assert truth.parts_good + truth.parts_scrap == truth.parts_total
    values: dict[str, Any] = machine.read()
    assert values["parts_total"] == values["parts_good"] + values["parts_scrap"]
    assert values["run_seconds"] == truth.ms_in_state[MachineState.RUN] // 1000
    # No cycle is shorter than the ideal one.
    ideal = machine.params.cycle_time_s or 0
    assert truth.parts_total <= truth.ms_in_state[MachineState.RUN] / 1000 / ideal + 1


def test_state_follows_the_shift_pattern() -> None:
    machine = cnc(start=MIDNIGHT, shifts=[{"start": "06:00", "end": "14:00"}])
    seen_in_shift: set[MachineState] = set()
    for minute in range(0, 24 * 60, 5):
        machine.advance_to(MIDNIGHT + minute * 60)
        in_shift = 6 * 60 <= minute < 14 * 60
        if in_shift:
            seen_in_shift.add(machine.state)
        else:
            assert machine.state is MachineState.OFF
            assert machine.power_mw == 0
            assert machine.read()["speed_rpm"] == 0
    assert MachineState.OFF not in seen_in_shift
    assert {MachineState.RUN, MachineState.IDLE} <= seen_in_shift
    truth = machine.truth()
    assert truth.ms_in_state[MachineState.OFF] >= 16 * 3600 * 1000 - 5 * 60 * 1000


def test_power_follows_the_state() -> None:
    params = CncParams(kind="cnc", power_noise=0.0)
    machine = Machine(params, seed=5, start=MORNING)
    seen: set[MachineState] = set()
    for k in range(4 * 3600):
        machine.advance_to(MORNING + k)
        assert machine.power_kw == pytest.approx(params.power_kw.of(machine.state))
        seen.add(machine.state)
    assert {MachineState.RUN, MachineState.IDLE, MachineState.FAULT} <= seen


def test_fault_sets_alarm_and_status_bits() -> None:
    machine = cnc(seed=9, fault_probability=1.0, mean_run_s=60, mean_fault_s=60)
    for k in range(2 * 3600):
        machine.advance_to(MORNING + k)
        values = machine.read()
        faulted = machine.state is MachineState.FAULT
        assert bool(values["alarm_code"]) == faulted
        assert values["fault"] == faulted
        assert values["status_word"] == (
            (machine.state is not MachineState.OFF)
            | (machine.state is MachineState.RUN) << 1
            | faulted << 2
            | (machine.state is MachineState.IDLE) << 3
        )


def test_every_quantity_is_read_with_its_declared_kind() -> None:
    kinds = {"bool": bool, "int": int, "float": float, "str": str}
    machine = cnc()
    machine.advance_to(MORNING + 1000)
    meter = PowerMeter(MeterParams(kind="power_meter"), seed=1, start=MORNING)
    meter.advance_to(MORNING + 1000)
    for values, catalog in ((machine.read(), MACHINE_QUANTITIES), (meter.read(), METER_QUANTITIES)):
        assert set(values) == set(catalog)
        for name, quantity in catalog.items():
            assert type(values[name]) is kinds[quantity.kind], name


def test_compressor_makes_no_parts() -> None:
    machine = Machine(CompressorParams(kind="compressor"), seed=1, start=MORNING)
    machine.advance_to(MORNING + 4 * HOUR)
    assert machine.truth().parts_total == 0
    assert machine.truth().ms_in_state[MachineState.RUN] > 0


# ----------------------------------------------------------------------------- meter


def test_meter_energy_is_base_load_plus_its_machines_exactly() -> None:
    profile = parse_profile((PROFILES_DIR / "demo-plant.yaml").read_text())
    sim = build_simulation(profile, MORNING)
    sim.advance_to(MORNING + 2 * HOUR + 0.3)
    line = sim.meter("line-meter")
    truth = line.truth()
    machines = sum(load.truth().energy_uj for load in line.loads)
    assert {m.params.kind for m in line.loads} == {"cnc", "press"}
    assert truth.energy_uj == truth.base_energy_uj + machines
    assert line.power_mw - sum(m.power_mw for m in line.loads) > 0


def test_meter_counter_rolls_over_at_2_to_the_32() -> None:
    # 36 kW without noise is exactly 0.01 kWh per second: one count per second.
    params = MeterParams(
        kind="power_meter", base_load_kw=36.0, base_load_noise=0.0, initial_counter=2**32 - 10
    )
    meter = PowerMeter(params, seed=1, start=MORNING)
    meter.advance_to(MORNING + 9)
    assert (meter.truth().counter, meter.truth().rollovers) == (2**32 - 1, 0)
    meter.advance_to(MORNING + 10)
    assert (meter.truth().counter, meter.truth().rollovers) == (0, 1)
    meter.advance_to(MORNING + 15.5)
    assert meter.read()["energy_import_counter"] == 5
    assert meter.read()["energy_import_kwh"] == pytest.approx(0.05)
    assert meter.truth().energy_kwh == pytest.approx(0.155)


@settings(max_examples=30, deadline=None)
@given(
    initial=st.integers(0, 2**32 - 1),
    seconds=st.floats(0, 5000),
    load_kw=st.floats(0, 500),
)
def test_meter_counter_is_floor_of_true_energy_modulo_2_to_the_32(
    initial: int, seconds: float, load_kw: float
) -> None:
    params = MeterParams(kind="power_meter", base_load_kw=load_kw, initial_counter=initial)
    meter = PowerMeter(params, seed=2, start=MORNING)
    meter.advance_to(MORNING + seconds)
    truth = meter.truth()
    resolution_uj = UJ_PER_KWH // 100
    expected = initial + truth.energy_uj // resolution_uj
    assert truth.counter == expected % 2**32
    assert truth.rollovers == expected // 2**32
    assert meter.read()["energy_import_counter"] == truth.counter


def test_meter_electrical_values_are_consistent() -> None:
    meter = PowerMeter(MeterParams(kind="power_meter", base_load_kw=40.0), seed=4, start=MORNING)
    for k in range(0, 600, 7):
        meter.advance_to(MORNING + k)
        v: dict[str, Any] = meter.read()
        p, q, s, pf = (
            v["power_active_kw"],
            v["power_reactive_kvar"],
            v["power_apparent_kva"],
            v["power_factor"],
        )
        phases = ("l1", "l2", "l3")
        assert p == pytest.approx(sum(v[f"power_active_{ph}_kw"] for ph in phases))
        assert s == pytest.approx(math.hypot(p, q))
        assert pf == pytest.approx(p / s)
        apparent = sum(v[f"voltage_{ph}_n"] * v[f"current_{ph}"] for ph in phases) / 1000
        assert apparent == pytest.approx(s)
        assert 49.9 < v["frequency_hz"] < 50.1
        assert 390 < v["voltage_l1_l2"] < 410


def test_machine_advanced_past_its_meter_is_an_error() -> None:
    machine = cnc()
    meter = PowerMeter(
        MeterParams(kind="power_meter", loads=("cnc",)), seed=1, start=MORNING, loads=[machine]
    )
    machine.advance_to(MORNING + 10)
    with pytest.raises(RuntimeError, match="advanced past the meter"):
        meter.advance_to(MORNING + 10)


def test_simulation_lockstep_with_a_machine_on_two_meters() -> None:
    machine = cnc()
    meters = [
        PowerMeter(
            MeterParams(kind="power_meter", loads=("cnc",)), seed=i, start=MORNING, loads=[machine]
        )
        for i in (1, 2)
    ]
    sim = Simulation({"cnc": machine, "a": meters[0], "b": meters[1]})
    sim.advance_to(MORNING + 1000.5)
    for meter in meters:
        truth = meter.truth()
        assert truth.energy_uj == truth.base_energy_uj + machine.truth().energy_uj
    assert sim.now == MORNING + 1000.5


# ----------------------------------------------------------------------------- shifts


def test_overnight_shift_and_working_days() -> None:
    calendar = ShiftCalendar([ShiftWindow(22 * 60, 6 * 60)], ["tue"], "UTC")
    at = [(MIDNIGHT + h * HOUR) for h in (-1, 12, 22, 23.5, 29.99, 30, 47)]
    assert [calendar.in_shift_ms(round(t * 1000)) for t in at] == [
        False,  # Monday 23:00: Monday is not a working day
        False,
        True,  # Tuesday 22:00
        True,
        True,  # Wednesday 05:59 belongs to Tuesday's shift
        False,
        False,  # Wednesday 23:00
    ]


def test_shifts_follow_the_time_zone() -> None:
    calendar = ShiftCalendar([ShiftWindow(8 * 60, 16 * 60)], ["tue"], "Europe/Berlin")
    assert calendar.in_shift_ms(round((MIDNIGHT + 7.5 * HOUR) * 1000))  # 08:30 in Berlin
    assert not calendar.in_shift_ms(round((MIDNIGHT + 15.5 * HOUR) * 1000))  # 16:30


# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x3F80, 0x0000]),
        ("CDAB", [0x0000, 0x3F80]),
        ("BADC", [0x803F, 0x0000]),
        ("DCBA", [0x0000, 0x803F]),
    ],
)
def test_float32_byte_orders(order: Any, registers: list[int]) -> None:
    assert encode(1.0, "float32", byte_order=order) == registers


def test_64_bit_word_order_reverses_all_registers() -> None:
    value = 0x0102030405060708
    assert encode(value, "uint64") == [0x0102, 0x0304, 0x0506, 0x0708]
    assert encode(value, "uint64", byte_order="CDAB") == [0x0708, 0x0506, 0x0304, 0x0102]
    assert encode(value, "uint64", byte_order="DCBA") == [0x0807, 0x0605, 0x0403, 0x0201]
    assert encode(value, "uint64", byte_order="BADC") == [0x0201, 0x0403, 0x0605, 0x0807]


def test_scale_offset_rounding_and_wrapping() -> None:
    assert encode(230.04, "int32", scale=0.1) == [0, 2300]
    assert encode(-1.5, "int16", scale=0.001) == [struct.unpack(">H", struct.pack(">h", -1500))[0]]
    assert encode(20.0, "uint16", scale=0.5, offset=-10.0) == [60]
    assert encode(2**32 + 3, "uint32") == [0, 3]  # counters roll over
    assert encode(1.0, "float64") == [0x3FF0, 0, 0, 0]


def test_strings_are_ascii_high_byte_first_and_nul_padded() -> None:
    assert encode("AB C", "string", length=3) == [0x4142, 0x2043, 0x0000]
    assert encode("AB C", "string", length=3, byte_order="BADC") == [0x4241, 0x4320, 0]
    assert encode("ABCDEF", "string", length=2) == [0x4142, 0x4344]


# ----------------------------------------------------------------------------- profiles

_UNIT = """
      - unit_id: 1
        name: m
        model: {kind: cnc}
        points:
"""


def profile_text(points: str, unit: str = _UNIT) -> str:
    return (
        "name: p\nservers:\n  - name: s\n    transport: tcp\n    units:\n"
        + unit
        + "".join(f"          - {line}\n" for line in points.strip().splitlines())
    )


def test_demo_profile_loads_and_covers_every_unit_kind() -> None:
    profile = parse_profile((PROFILES_DIR / "demo-plant.yaml").read_text())
    kinds = {unit.model.kind for _, unit in profile.units()}
    assert kinds == {"power_meter", "cnc", "press", "compressor", "gas_meter"}
    ports = sorted(s.port for s in profile.servers if s.transport == "tcp")
    assert ports == [15020, 15021]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ("{name: a, address: 0, type: uint32}\n{name: b, address: 1}", "overlap at holding 1"),
        ("{name: nope, address: 0}", "has no quantity 'nope'"),
        ("{name: state, table: coil, address: 0}", "type bool"),
        ("{name: program, address: 0, type: uint16}", "is str, not uint16"),
        ("{name: program, address: 0, type: string}", "length is required"),
        ("{name: state, address: 0, colour: red}", "Extra inputs are not permitted"),
        ("{name: state, address: 0, scale: 0}", "non-zero"),
        ("{name: state, address: 0}\n{name: state, address: 1}", "used twice"),
    ],
)
def test_profile_errors_are_reported(points: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(profile_text(points))


def test_duplicate_yaml_keys_are_errors() -> None:
    with pytest.raises(ProfileError, match="duplicate key 'address'"):
        parse_profile(profile_text("{name: state, address: 0, address: 1}"))


def test_meter_load_must_name_a_machine(tmp_path: Path) -> None:
    unit = _UNIT.replace("{kind: cnc}", "{kind: power_meter, loads: [ghost]}")
    with pytest.raises(ProfileError, match="load 'ghost' is not a machine unit"):
        parse_profile(profile_text("{name: frequency_hz, address: 0, type: float32}", unit))

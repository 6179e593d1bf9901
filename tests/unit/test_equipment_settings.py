"""Settings written to the models: effect from the next step, exact ground truth, history.

The compressor's power is checked against the documented formula computed here from
the same seeded noise, step by step, so a missing or misplaced effect shows as a
difference of milliwatts, not as a trend.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.equipment import Machine, MachineState, PowerMeter, Simulation
from simulators.machine import (
    CncParams,
    CompressorParams,
    MachineMode,
    SettingChange,
    SettingError,
)
from simulators.meter import MeterParams
from simulators.profile import ProfileError, parse_profile
from simulators.registers import decode, encode
from simulators.stepping import MW_PER_KW, noise_at, noise_key

MIDNIGHT = 1_699_920_000.0  # Tuesday 2023-11-14 00:00 UTC
HOUR = 3600.0
MORNING = MIDNIGHT + 6 * HOUR
ALL_DAY = {"shifts": [{"start": "00:00", "end": "24:00"}]}


def compressor(seed: int = 11, **params: object) -> Machine:
    return Machine(
        CompressorParams.model_validate({"kind": "compressor", **ALL_DAY, **params}),
        seed=seed,
        start=MIDNIGHT,
    )


def cnc(seed: int = 7) -> Machine:
    return Machine(CncParams(kind="cnc"), seed=seed, start=MORNING)


def expected_power_mw(machine: Machine, setpoint_bar: float) -> int:
    """The documented model: loaded power x (1 + 0.07 x (setpoint - 7)), with the noise."""
    params = machine.params
    assert isinstance(params, CompressorParams)
    nominal = params.power_kw.of(machine.state) * MW_PER_KW
    if machine.state is MachineState.RUN:
        nominal *= 1 + 0.07 * (setpoint_bar - 7.0)
    if not nominal:
        return 0
    noise = noise_at(noise_key(11, 1), machine.step_index)  # seed 11, power channel 1
    return round(nominal * (1 + params.power_noise * noise))


def test_a_setpoint_acts_from_the_next_step_and_energy_is_the_exact_sum() -> None:
    machine = compressor()
    machine.advance_to(MIDNIGHT + 3600.4)
    change = machine.write("pressure_setpoint_bar", 6.5)
    assert change == SettingChange(
        time_ms=round((MIDNIGHT + 3600.4) * 1000),
        step=3601,
        effective_ms=round((MIDNIGHT + 3601) * 1000),
        quantity="pressure_setpoint_bar",
        value=6.5,
    )
    assert machine.read()["pressure_setpoint_bar"] == 6.5  # shown at once
    assert machine.power_mw == expected_power_mw(machine, 7.0)  # acts a step later
    # Energy so far, plus the rest of the write's own step at its old power.
    energy = machine.truth().energy_uj + machine.power_mw * 600
    loaded_steps = 0
    for k in range(3601, 3601 + 7200):
        machine.advance_to(MIDNIGHT + k)
        assert machine.step_index == k
        assert machine.power_mw == expected_power_mw(machine, 6.5), k
        loaded_steps += machine.state is MachineState.RUN
        energy += machine.power_mw * 1000
    machine.advance_to(MIDNIGHT + 3601 + 7200)
    assert machine.truth().energy_uj == energy
    assert loaded_steps > 1000  # the check above saw loaded steps, not only unloaded ones


def test_ground_truth_is_piecewise_equal_to_an_unwritten_twin_until_the_effect() -> None:
    written, untouched = compressor(), compressor()
    for machine in (written, untouched):
        machine.advance_to(MIDNIGHT + 7200.5)
    written.write("pressure_setpoint_bar", 5.5)
    for machine in (written, untouched):
        machine.advance_to(MIDNIGHT + 7201)
    assert written.truth().energy_uj == untouched.truth().energy_uj
    for machine in (written, untouched):
        machine.advance_to(MIDNIGHT + 24 * HOUR)
    low, rated = written.truth(), untouched.truth()
    assert low.energy_uj < rated.energy_uj
    # The duty shifts too: less of the time loaded at 5.5 bar than at 7.
    share = {
        name: t.ms_in_state[MachineState.RUN]
        / (t.ms_in_state[MachineState.RUN] + t.ms_in_state[MachineState.IDLE])
        for name, t in (("low", low), ("rated", rated))
    }
    assert share["low"] < share["rated"]
    assert [c.value for c in low.changes] == [5.5]
    assert rated.changes == ()


def test_the_rated_setpoint_changes_nothing() -> None:
    """A profile without writes, or a write of the rated 7 bar, is the plant of before."""
    written, untouched = compressor(), compressor()
    written.advance_to(MIDNIGHT + 10)
    written.write("pressure_setpoint_bar", 7.0)
    for machine in (written, untouched):
        machine.advance_to(MIDNIGHT + 6 * HOUR)
    assert written.truth().energy_uj == untouched.truth().energy_uj
    assert written.read() == untouched.read()


def test_the_meter_measuring_the_compressor_follows_to_the_microjoule() -> None:
    def plant() -> Simulation:
        machine = compressor()
        meter = PowerMeter(
            MeterParams(kind="power_meter", base_load_kw=0.4),
            seed=3,
            start=MIDNIGHT,
            loads=[machine],
        )
        return Simulation({"compressor": machine, "meter": meter})

    written, untouched = plant(), plant()
    for simulation in (written, untouched):
        simulation.advance_to(MIDNIGHT + 600.7)
    written.machine("compressor").write("pressure_setpoint_bar", 6.0)
    for simulation in (written, untouched):
        simulation.advance_to(MIDNIGHT + 8 * HOUR)
    meter, machine = written.meter("meter").truth(), written.machine("compressor").truth()
    assert meter.energy_uj == meter.base_energy_uj + machine.energy_uj
    saved_by_meter = untouched.meter("meter").truth().energy_uj - meter.energy_uj
    saved = untouched.machine("compressor").truth().energy_uj - machine.energy_uj
    assert saved_by_meter == saved > 0


def test_mode_stop_turns_the_machine_off_and_auto_starts_it_again() -> None:
    machine = cnc()
    machine.advance_to(MORNING + 1800.2)
    assert machine.state is not MachineState.OFF
    machine.write("mode", 1)
    assert machine.mode is MachineMode.AUTO  # still running this step
    machine.advance_to(MORNING + 1801)
    assert (machine.state, machine.power_mw, machine.mode) == (
        MachineState.OFF,
        0,
        MachineMode.STOP,
    )
    stopped = machine.truth()
    machine.advance_to(MORNING + 5400.5)
    held = machine.truth()
    assert held.parts_total == stopped.parts_total
    assert held.energy_uj == stopped.energy_uj
    assert held.ms_in_state[MachineState.OFF] - stopped.ms_in_state[MachineState.OFF] == 3599_500
    machine.write("mode", 0)
    machine.advance_to(MORNING + 5401)
    assert machine.state is MachineState.IDLE  # warm-up after a start, as at a shift start
    machine.advance_to(MORNING + 3 * HOUR)
    assert machine.truth().parts_total > held.parts_total
    assert machine.read()["mode"] == 0


def test_same_seeds_and_writes_give_the_same_plant_however_time_was_stepped() -> None:
    writes = [(MORNING + 100.3, "mode", 1), (MORNING + 700.9, "mode", 0)]

    def run(increments: list[float]) -> tuple[object, object]:
        machine = cnc()
        t = MORNING
        pending = list(writes)
        for step in increments:
            while pending and pending[0][0] <= t + step:
                at, quantity, value = pending.pop(0)
                machine.advance_to(at)
                machine.write(quantity, value)
            t += step
            machine.advance_to(t)
        return machine.truth(), machine.read()

    fine = run([0.25] * 8000)
    coarse = run([333.0, 1000.0, 667.0])
    assert fine == coarse


@settings(max_examples=20, deadline=None)
@given(at=st.floats(1.0, 7200.0), setpoint=st.integers(550, 800))
def test_writes_are_deterministic(at: float, setpoint: int) -> None:
    def run() -> object:
        machine = compressor()
        machine.advance_to(MIDNIGHT + at)
        machine.write("pressure_setpoint_bar", setpoint / 100)
        machine.advance_to(MIDNIGHT + 3 * HOUR)
        return machine.truth()

    assert run() == run()


@pytest.mark.parametrize(
    ("quantity", "value", "reason"),
    [
        ("mode", 2, r"is not 0 \(auto\) or 1 \(stop\)"),
        ("mode", 0.5, r"is not 0 \(auto\) or 1 \(stop\)"),
        ("pressure_setpoint_bar", 3.9, "outside 4.0-10.0 bar"),
        ("pressure_setpoint_bar", float("nan"), "not a finite number"),
        ("power_kw", 10.0, "not a setting"),
    ],
)
def test_values_the_machine_does_not_take_are_refused(
    quantity: str, value: float, reason: str
) -> None:
    machine = compressor()
    machine.advance_to(MIDNIGHT + 5)
    with pytest.raises(SettingError, match=reason):
        machine.write(quantity, value)
    assert machine.truth().changes == ()


def test_a_cnc_has_no_pressure_setpoint() -> None:
    with pytest.raises(SettingError, match="takes: mode"):
        cnc().write("pressure_setpoint_bar", 6.0)


def test_acknowledging_the_active_alarm_ends_the_fault_at_the_next_step() -> None:
    machine = Machine(
        CncParams(kind="cnc", fault_probability=1.0, mean_fault_s=3600.0, **ALL_DAY),
        seed=4,
        start=MIDNIGHT,
    )
    t = MIDNIGHT
    while machine.state is not MachineState.FAULT:
        t += 1
        machine.advance_to(t)
    alarm = machine.read()["alarm_code"]
    assert isinstance(alarm, int)
    with pytest.raises(SettingError, match=f"alarm {alarm} is active"):
        machine.acknowledge_alarm(alarm + 1)
    machine.advance_to(t + 0.5)
    machine.acknowledge_alarm(alarm)
    assert machine.state is MachineState.FAULT
    machine.advance_to(t + 1)
    assert machine.state is MachineState.IDLE
    assert machine.read()["alarm_code"] == 0
    with pytest.raises(SettingError, match="no alarm is active"):
        machine.acknowledge_alarm(alarm)
    assert [c.quantity for c in machine.truth().changes] == ["acknowledge_alarm"]


# ----------------------------------------------------------------------------- registers


@settings(max_examples=200, deadline=None)
@given(
    type_=st.sampled_from(["int16", "uint16", "int32", "uint32", "int64", "uint64"]),
    order=st.sampled_from(["ABCD", "BADC", "CDAB", "DCBA"]),
    raw=st.integers(-(2**15), 2**15 - 1),
)
def test_decode_inverts_encode_for_integers(type_: str, order: str, raw: int) -> None:
    if type_.startswith("u"):
        raw = abs(raw)
    words = encode(raw, type_, byte_order=order)  # type: ignore[arg-type]
    assert decode(words, type_, byte_order=order) == raw  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ["ABCD", "BADC", "CDAB", "DCBA"])
def test_decode_inverts_encode_for_floats_scales_and_strings(order: str) -> None:
    for type_ in ("float32", "float64"):
        words = encode(6.25, type_, byte_order=order)  # type: ignore[arg-type]
        assert decode(words, type_, byte_order=order) == 6.25  # type: ignore[arg-type]
    words = encode(6.5, "uint16", scale=0.01)
    assert words == [650]
    assert decode(words, "uint16", scale=0.01) == pytest.approx(6.5, rel=1e-12)
    if order in ("ABCD", "BADC"):
        text = encode("AUTO", "string", byte_order=order, length=4)  # type: ignore[arg-type]
        assert decode(text, "string", byte_order=order, length=4) == "AUTO"  # type: ignore[arg-type]


def test_decode_refuses_wrong_lengths_and_non_ascii() -> None:
    with pytest.raises(ValueError, match="takes 2 registers"):
        decode([1], "float32")
    with pytest.raises(ValueError, match="ascii"):
        decode([0xC3A4], "string", length=1)


# ----------------------------------------------------------------------------- profiles

_UNIT = """
name: p
servers:
  - name: s
    transport: tcp
    units:
      - unit_id: 1
        name: m
        model: {{kind: {kind}}}
        points:
          - {point}
"""


@pytest.mark.parametrize(
    ("kind", "point", "finding"),
    [
        ("cnc", "{name: mode, table: input, address: 0, writable: true}", "holding registers"),
        ("cnc", "{name: state, address: 0, writable: true}", "cannot be writable"),
        ("cnc", "{name: pressure_setpoint_bar, address: 0, writable: true}", "has no quantity"),
        ("cnc", "{name: mode, address: 0, min: 0, max: 1}", "only for writable points"),
        ("cnc", "{name: mode, address: 0, writable: true, min: 2, max: 1}", "above max"),
        ("power_meter", "{name: frequency_hz, address: 0, writable: true}", "none"),
    ],
)
def test_profiles_refuse_writable_points_that_are_not_settings(
    kind: str, point: str, finding: str
) -> None:
    with pytest.raises(ProfileError, match=finding):
        parse_profile(_UNIT.format(kind=kind, point=point))


def test_opcua_units_declare_only_settings_writable() -> None:
    text = """
name: p
servers:
  - name: s
    transport: opcua
    units:
      - name: m
        model: {kind: cnc}
        writable: [{quantity: program}]
"""
    with pytest.raises(ProfileError, match="'program' cannot be writable"):
        parse_profile(text)

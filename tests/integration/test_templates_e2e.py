"""Every bundled device template, end to end: the simulator serves the template's map
(generated from the template file), the agent's Modbus driver reads a plant that says
``template: <name>`` over TCP on 127.0.0.1, and every tag matches the simulator's truth.

The expected values are worked out here from the model's quantities and their units,
apart from simulators/templates.py (which folds the unit factor into the registers it
serves), and the simulator encodes with its own struct-based encoder: a mistake in the
agent's decoding, in the template expansion or in the unit handling shows up.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from drivers.registry import build_drivers
from edge_agent.config import ModbusDeviceConfig, ModbusTag
from edge_agent.config.loader import parse_config
from edge_agent.config.template_files import DeviceTemplate, library
from edge_agent.model import Quality, SampleBatch
from simulators.cli import run_simulate
from simulators.drive import DRIVE_QUANTITIES
from simulators.meter import METER_QUANTITIES
from simulators.serve import Plant, serve_profile
from simulators.templates import SERVER_NAME, UNIT_NAME, load_bundled, state_of, template_profile

pytestmark = pytest.mark.integration

BUNDLED = sorted(library())
#: SI prefixes and base units, to express a model quantity in a tag's unit.
_PREFIX = {"k": 1e3, "M": 1e6}
_BASE_UNITS = ("W", "var", "VA", "Wh", "V", "A", "Hz", "rpm", "%", "")


#: Tuesday 2023-11-14 10:00 UTC: inside the default shifts, so a drive is at work.
T0 = 1_699_956_000.0


class FrozenClock:
    """The simulator's clock: it moves only when the test says, so values hold still."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=BUNDLED)
async def served(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[DeviceTemplate, Plant, FrozenClock]]:
    template = load_bundled(request.param)
    clock = FrozenClock()
    # Started 3 h ago: counters have moved, and a drive has had time to change state.
    async with serve_profile(
        template_profile(template, unit_id=7), clock=clock, start=clock.now - 3 * 3600
    ) as plant:
        yield template, plant, clock


def plant_text(name: str, port: int, state_dir: Path) -> str:
    return f"""
plant: {{name: templates}}
state_dir: {state_dir}
devices:
  - name: {UNIT_NAME}
    template: {name}
    connection: {{transport: tcp, host: 127.0.0.1, port: {port}}}
    unit_id: 7
    timeout: 2s
"""


def in_unit(value: float, unit: str, wanted: str) -> float:
    """``value`` in ``unit`` expressed in ``wanted`` (1.5 kW -> 1500 W)."""

    def split(text: str) -> tuple[float, str]:
        if text in _BASE_UNITS:
            return 1.0, text
        assert text[:1] in _PREFIX, text
        assert text[1:] in _BASE_UNITS, text
        return _PREFIX[text[0]], text[1:]

    (have, base), (want, wanted_base) = split(unit), split(wanted)
    assert base == wanted_base, (unit, wanted)
    return value * have / want


def close_enough(tag: ModbusTag, got: Any, want: float) -> bool:
    """Equal within what the register carries: float32 precision or half a scaled step."""
    if tag.type == "float32":
        # A scaled float32 (DTSU666: 2301.5 x 0.1 V) carries 24 bits of the raw value.
        return math.isclose(got, want, rel_tol=3e-7, abs_tol=abs(tag.scale) * 1e-6)
    return bool(abs(got - want) <= abs(tag.scale) / 2 * (1 + 1e-9))


def check_tags(
    template: DeviceTemplate,
    tags: Mapping[str, ModbusTag],
    batches: list[SampleBatch],
    truth: Mapping[str, Any],
    true_state: str | None,
) -> int:
    quantity_of = {tag.name: tag.quantity for _, tag in template.tags()}
    units = {**METER_QUANTITIES, **DRIVE_QUANTITIES}
    checked = 0
    for batch in batches:
        labels = dict(zip(batch.names, batch.values, strict=True))
        for name, value, quality, reason in zip(
            batch.names, batch.values, batch.qualities, batch.reasons, strict=True
        ):
            assert quality is Quality.GOOD, (template.template, name, reason)
            if name not in tags:  # an enum's raw code (state_code): the code of its label
                label = next(t for t in tags.values() if t.code_name == name)
                assert label.enum is not None
                assert isinstance(value, int)
                assert label.enum[value] == labels[label.name], (name, value)
                continue
            tag, quantity = tags[name], quantity_of[name]
            assert quantity is not None
            if tag.enum is not None:
                # A state with the device's own codes: its label means the model's state.
                assert quantity == "state"
                assert state_of(template, str(value)) == true_state, (name, value)
            else:
                want = in_unit(float(truth[quantity]), units[quantity].unit, tag.unit)
                assert close_enough(tag, value, want), (template.template, name, value, want)
            checked += 1
    return checked


async def test_every_tag_of_every_template_matches_the_simulator(
    served: tuple[DeviceTemplate, Plant, FrozenClock], tmp_path: Path
) -> None:
    template, plant, clock = served
    config = parse_config(plant_text(template.template, plant.port(SERVER_NAME), tmp_path))
    device = config.devices[0]
    assert isinstance(device, ModbusDeviceConfig)
    assert device.template == template.template
    tags = {tag.name: tag for group in device.poll_groups for tag in group.tags}
    assert set(tags) == {tag.name for _, tag in template.tags()}
    (driver,) = build_drivers(config)
    states: set[str | None] = set()
    try:
        await driver.connect()
        # 10:00 and 23:00 (a drive at work, then switched off) and 10:00 the next day:
        # counters have moved between the passes, and a drive's state has changed.
        for later in (0.0, 13 * 3600.0, 11 * 3600.0 + 37.0):
            clock.now += later
            batches: list[SampleBatch] = []
            for group in driver.groups:
                batches += await driver.read(group.name)
            truth = plant.read(UNIT_NAME)  # the frozen clock: the instant the driver read
            state = None
            if template.roles.machine is not None:
                state = plant.machine_truth(UNIT_NAME).state.name.lower()
            assert check_tags(template, tags, batches, truth, state) == len(tags)
            states.add(state)
        if template.roles.machine is not None:
            assert "off" in states
            assert len(states) >= 2
    finally:
        await driver.close()


def test_simulate_serves_a_template_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_simulate("template:eastron-sdm120", duration=0.2) == 0
    out = capsys.readouterr().out
    assert "simulating 'eastron-sdm120'" in out
    assert "modbus-tcp 127.0.0.1:" in out


def test_simulate_names_an_unknown_template(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_simulate("template:eastron-sdm12", duration=0.2) == 2
    assert "did you mean 'eastron-sdm120'?" in capsys.readouterr().err

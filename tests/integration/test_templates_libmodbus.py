"""Every bundled template read through a Modbus server we did not write: libmodbus 3.1.

The register image is the simulator's map of the template (the same registers
test_templates_e2e.py serves through pymodbus), written to a file at one instant and
served by tests/peers/libmodbus_image_server.c: libmodbus frames every answer, and
addresses outside the template answer exception 2 as a real meter's holes do. The agent's
own Modbus driver reads a plant that says ``template: <name>``, and every tag must be good
and match the simulator's truth at that instant. This is also the agent's framing
(transaction ids, lengths, byte counts, coalesced reads across holes) against a peer
that shares no code with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from drivers.registry import build_drivers
from edge_agent.cli import main
from edge_agent.config import ModbusDeviceConfig
from edge_agent.config.loader import parse_config
from edge_agent.config.template_files import DeviceTemplate, library
from edge_agent.model import SampleBatch
from simulators.equipment import Machine
from simulators.modbus_server import point_words
from simulators.profile import Unit, build_simulation
from simulators.templates import UNIT_NAME, load_bundled, template_profile
from tests.integration.test_templates_e2e import T0, check_tags, plant_text
from tests.libmodbus_peer import compile_image_server, image_server

pytestmark = pytest.mark.integration

UNIT_ID = 7


@pytest.fixture(scope="module")
def image_server_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_image_server(tmp_path_factory.mktemp("libmodbus-image"))


def register_image(template: DeviceTemplate, at: float) -> tuple[list[str], dict[str, object]]:
    """The template's registers at ``at`` as image lines, and the model's values then."""
    unit = template_unit_of(template)
    simulation = build_simulation(template_profile(template, unit_id=UNIT_ID), start=at - 3 * 3600)
    simulation.advance_to(at)
    model = simulation.model(unit.name)
    values = model.read()
    lines: list[str] = []
    for point in unit.points:
        words = point_words(point, values[point.source])
        lines += [f"{UNIT_ID} {point.table} {point.address + i} {w}" for i, w in enumerate(words)]
    truth: dict[str, object] = dict(values)
    if isinstance(model, Machine):
        truth["__state"] = model.truth().state.name.lower()
    return lines, truth


def template_unit_of(template: DeviceTemplate) -> Unit:
    (unit,) = template_profile(template, unit_id=UNIT_ID).servers[0].units
    assert isinstance(unit, Unit)
    return unit


@pytest.fixture
def serve_image(image_server_binary: Path, tmp_path: Path) -> Iterator[Callable[[list[str]], int]]:
    with ExitStack() as servers:

        def start(lines: list[str]) -> int:
            return servers.enter_context(image_server(image_server_binary, lines, tmp_path))

        yield start


@pytest.mark.parametrize("name", sorted(library()))
async def test_every_tag_of_every_template_read_through_libmodbus(
    name: str, serve_image: Callable[[list[str]], int], tmp_path: Path
) -> None:
    template = load_bundled(name)
    lines, truth = register_image(template, T0)
    port = serve_image(lines)
    text = plant_text(name, port, tmp_path).replace("unit_id: 7", f"unit_id: {UNIT_ID}")
    config = parse_config(text)
    device = config.devices[0]
    assert isinstance(device, ModbusDeviceConfig)
    tags = {tag.name: tag for group in device.poll_groups for tag in group.tags}
    (driver,) = build_drivers(config)
    try:
        await driver.connect()
        batches: list[SampleBatch] = []
        for group in driver.groups:
            batches += await driver.read(group.name)
    finally:
        await driver.close()
    state = truth.pop("__state", None)
    true_state = state if isinstance(state, str) else None
    assert device.name == UNIT_NAME
    assert check_tags(template, tags, batches, truth, true_state) == len(tags)


def test_run_once_reads_a_template_through_libmodbus(
    serve_image: Callable[[list[str]], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run --once`` on a meter served by a peer we did not write: exit 0, every tag good,
    each shown with the registers it was decoded from."""
    template = load_bundled("eastron-sdm630")
    lines, truth = register_image(template, T0)
    port = serve_image(lines)
    plant = tmp_path / "plant.yaml"
    plant.write_text(plant_text(template.template, port, tmp_path / "state"))
    assert main(["run", "--once", "-c", str(plant)]) == 0
    out = capsys.readouterr().out
    voltage = f"{float(truth['voltage_l1_n']):.2f}"[:5]  # e.g. 230.1: the float32 printed
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    assert set(rows) >= {tag.name for _, tag in template.tags()}
    assert all(" good " in row for row in rows.values()), out
    assert voltage in rows["voltage_l1"]
    assert "[" in rows["voltage_l1"]  # the raw registers in hex
    assert not (tmp_path / "state").exists()  # nothing written: no outbox, no state

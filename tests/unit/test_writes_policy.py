"""The plant's write policy as the gate reads it: deny by default, template tags included;
the step rule at the edges of floating point."""

from __future__ import annotations

import pytest

from drivers.modbus.encode import encode
from edge_agent.config import ModbusDeviceConfig, ModbusTag
from edge_agent.config.loader import parse_config
from edge_agent.writes.policy import PlantWrites, ValueRefused, WritableTag, check_value
from tests.gate_support import plant

TEMPLATE_PLANT = """
plant: {name: shop}
devices:
  - name: fan
    template: invt-gd20
    connection: {transport: tcp, host: 127.0.0.1, port: 503}
    overrides:
      set_frequency: {write: {channels: [cli], min: 0, max: 50, step: 0.01}}
"""


def test_only_tags_with_a_write_block_are_writable() -> None:
    writes = PlantWrites.of(plant())
    compressor = writes.devices["compressor-1"]
    assert set(compressor.tags) == {"pressure_setpoint", "mode", "pump", "label"}
    assert "state" in compressor.all_tags
    assert "state" not in compressor.tags
    assert compressor.max_per_minute == 5
    assert set(writes.devices["press-2"].methods) == {"ack"}
    assert writes.console_writers == frozenset({"alice"})
    assert writes.anything_writable


def test_a_template_tag_made_writable_by_an_override() -> None:
    writes = PlantWrites.of(parse_config(TEMPLATE_PLANT, env={}))
    tag = writes.devices["fan"].tags["set_frequency"]
    assert tag.value_type == "uint16"
    assert tag.kind == "number"
    assert tag.unit == "Hz"
    assert set(writes.devices["fan"].tags) == {"set_frequency"}


def test_a_plant_without_write_blocks_writes_nothing() -> None:
    text = TEMPLATE_PLANT.split("    overrides:")[0]
    writes = PlantWrites.of(parse_config(text, env={}))
    assert not writes.anything_writable


def _preset(step: float, low: float = 0) -> WritableTag:
    tag = ModbusTag.model_validate(
        {
            "name": "preset",
            "address": 7,
            "type": "uint32",
            "write": {"channels": ["cli"], "min": low, "max": 4e9, "step": step},
        }
    )
    assert tag.write is not None
    return WritableTag("d", "preset", tag.write, "uint32")


@pytest.mark.parametrize(
    ("step", "low", "value"),
    [(1, 0, 3_000_000_000.5), (1, 0, 1e9 + 0.01), (0.5, 1, 3_999_999_999.25)],
)
def test_a_fraction_of_a_step_is_refused_however_large_the_value(
    step: float, low: float, value: float
) -> None:
    """A tolerance relative to the value (1e-9 x 3e9 = 3) let half a step through."""
    with pytest.raises(ValueRefused, match="not on a step"):
        check_value(_preset(step, low), value)


@pytest.mark.parametrize(
    ("step", "low", "value"),
    [(0.01, 0, 6.5), (0.1, 0, 0.1 + 0.2), (0.1, 5, 6.5), (1, 0, 3_000_000_000.0)],
)
def test_float_noise_is_on_a_step(step: float, low: float, value: float) -> None:
    assert check_value(_preset(step, low), value) == value


BOILER = """
plant: {name: p}
devices:
  - name: boiler
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 5020}
    poll_groups:
      - interval: 1s
        tags:
          - name: supply_setpoint
            address: 10
            scale: %(scale)s
            offset: %(offset)s
            type: %(type)s
            write: {channels: [cli], min: %(min)s, max: %(max)s}
"""


@pytest.mark.parametrize(
    ("type_", "scale", "offset", "low", "high"),
    [
        # the whole of a uint16 in 0.001 degC from -40: -40.000 to 25.535
        ("uint16", "0.001", "-40", "-40", "25.535"),
        # the whole of an int16 in 0.01 K shown in degC: -600.83 to 54.52
        ("int16", "0.01", "-273.15", "-600.83", "54.52"),
    ],
)
def test_a_range_that_is_exactly_what_the_register_holds_is_no_error(
    type_: str, scale: str, offset: str, low: str, high: str
) -> None:
    """The register's ends are products in floating point: 65535 x 0.001 - 40 comes out
    one ulp below 25.535. ``max: 25.535`` is what a uint16 x 0.001 - 40 holds (the
    driver writes it, raw 65535) and no error (it was, with a message that contradicted
    itself)."""
    values = {"type": type_, "scale": scale, "offset": offset, "min": low, "max": high}
    config = parse_config(BOILER % values, env={})  # ConfigError today
    [device] = config.devices
    assert isinstance(device, ModbusDeviceConfig)
    tag = device.poll_groups[0].tags[0]
    assert isinstance(tag, ModbusTag)
    for bound in (float(low), float(high)):
        encode(tag, bound)  # the device can be sent both ends

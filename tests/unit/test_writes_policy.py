"""The plant's write policy as the gate reads it: deny by default, template tags included."""

from __future__ import annotations

from edge_agent.config.loader import parse_config
from edge_agent.writes.policy import PlantWrites
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

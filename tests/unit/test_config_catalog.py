"""The tag catalog keeps one device per name; rules that report on every device must
still see a second device of the same name (issue 12 moved them onto the catalog); and
each device model describes what the MQTT meta message publishes."""

from __future__ import annotations

import pytest

from edge_agent.config import ModbusDeviceConfig, TagCatalog
from edge_agent.config.loader import parse_config
from edge_agent.errors import ConfigError

TWO_METERS = """\
plant:
  name: line-1
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1}
    poll_groups:
      - interval: 1s
        tags:
          - {name: power, table: input, address: 0, type: float32}
  - name: meter
    driver: modbus
    device_type: "#7 meter"
    labels: {_secret: x}
    connection: {transport: tcp, host: 127.0.0.2}
    poll_groups:
      - interval: 1s
        tags:
          - {name: time, table: input, address: 0, type: float32}
sinks:
  - name: tsdb
    type: influxdb
    url: http://influx.local:8086
    org: plant
    bucket: edge
    measurement: device_type
    safe_names: false
"""


def test_influx_rules_see_a_second_device_of_the_same_name() -> None:
    # Before issue 12 the InfluxDB sink's rules walked plant.devices: a duplicate device
    # name was reported, and so was what the second device would break in the sink.
    with pytest.raises(ConfigError) as caught:
        parse_config(TWO_METERS, "plant.yaml", env={})
    problems = "\n".join(caught.value.problems)
    assert "device name 'meter' used twice, lines 4 and 11" in problems
    assert "a tag named 'time' cannot be an InfluxDB field" in problems
    assert "device_type '#7 meter' would start a line protocol comment" in problems
    assert "label '_secret' starts with '_'" in problems


OPCUA_AND_MODBUS = """
plant: {name: p}
devices:
  - name: press
    driver: opcua
    endpoint: opc.tcp://127.0.0.1:4840
    poll_groups:
      - name: events
        mode: subscribe
        interval: 500ms
        tags:
          - {name: power, node: "ns=2;s=Press.Power", unit: kW, description: spindle power}
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1}
    poll_groups:
      - interval: 2s
        tags:
          - {name: door, table: holding, address: 7, type: bool, bit: 3, description: open}
"""


def test_each_device_describes_unit_description_and_address() -> None:
    """What the MQTT meta message publishes comes from describe(), whatever the driver."""
    catalog = TagCatalog.of(parse_config(OPCUA_AND_MODBUS, "plant.yaml", env={}).devices)
    power = catalog.tag("press", "power")
    assert power is not None
    assert (power.unit, power.description, power.address) == (
        "kW",
        "spindle power",
        {"node": "ns=2;s=Press.Power"},
    )
    assert power.change_based
    door = catalog.tag("meter", "door")
    assert door is not None
    assert door.description == "open"
    assert door.address == {"table": "holding", "address": 7, "bit": 3}
    assert door.interval == 2.0
    device = catalog.device("meter")
    assert device is not None
    assert device.template == ""  # no template: the MQTT meta message says null


def test_an_enum_tag_s_code_is_an_integer_tag_of_the_catalog() -> None:
    """Sinks, metrics and checks know ``state_code`` as they know ``state``."""
    device = ModbusDeviceConfig.model_validate(
        {
            "name": "cnc",
            "driver": "modbus",
            "connection": {"transport": "tcp", "host": "127.0.0.1"},
            "poll_groups": [
                {
                    "name": "fast",
                    "interval": "1s",
                    "tags": [
                        {"name": "state", "address": 0, "enum": {0: "off", 2: "run"}},
                        {"name": "power", "address": 1, "type": "float32"},
                    ],
                }
            ],
        }
    )
    tags = device.describe().tags
    assert list(tags) == ["state", "power", "state_code"]
    code = tags["state_code"]
    assert (code.group, code.value_type, code.enum, code.interval) == ("fast", "uint16", None, 1.0)
    assert code.numeric
    assert code.integer_bits == 16
    assert not tags["state"].numeric

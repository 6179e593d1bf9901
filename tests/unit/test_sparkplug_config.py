"""The ``type: sparkplug`` sink section: ids that are one topic level, device_ids that
name real devices and stay unique, credentials as the MQTT sink takes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import PlantConfig, SparkplugSinkConfig
from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.config.loader import load_config
from edge_agent.config.sparkplug import id_problem, scan_rate_ms, sparkplug_sink_problems
from edge_agent.errors import ConfigError

PLANT = """\
plant: {name: line-1}
state_dir: STATE
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1}
    poll_groups: [{interval: 2s, tags: [{name: p, address: 0}]}]
sinks:
  - name: scada
    type: sparkplug
    host: 127.0.0.1
    group_id: Plant1
    edge_node_id: line-1
    username: ${SPB_USER}
    password: ${SPB_PASSWORD}
    device_ids: {meter: Meter 1}
"""


def _sink(**fields: object) -> SparkplugSinkConfig:
    base: dict[str, object] = {
        "name": "scada",
        "type": "sparkplug",
        "host": "127.0.0.1",
        "group_id": "G",
        "edge_node_id": "N",
    }
    return SparkplugSinkConfig.model_validate(base | fields)


def test_a_plant_file_with_a_sparkplug_sink_loads_with_credentials_from_the_environment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(PLANT.replace("STATE", str(tmp_path)))
    plant = load_config(path, env={"SPB_USER": "edge", "SPB_PASSWORD": "s3cret"})
    sink = plant.sinks[0]
    assert isinstance(sink, SparkplugSinkConfig)
    assert (sink.username, sink.password) == ("edge", "s3cret")
    assert "s3cret" not in repr(sink)
    assert sink.device_id("meter") == "Meter 1"
    assert sink.device_id("plant") == "plant"  # a virtual device keeps its name
    assert sink.primary_host == ""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must not be empty"),
        ("a/b", "'/'"),
        ("a+b", "'+'"),
        ("#", "'#'"),
        ("a\0b", "NUL"),
    ],
)
def test_an_id_must_be_one_topic_level(value: str, problem: str) -> None:
    found = id_problem(value)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize("value", ["Plant 1", "Werk-Süd", "工厂1", "a.b_c"])
def test_spaces_and_non_ascii_are_fine_in_an_id(value: str) -> None:
    assert id_problem(value) is None


def test_every_id_field_is_checked_with_its_path() -> None:
    sink = _sink(group_id="a/b", edge_node_id="", primary_host="h#", device_ids={"meter": "x+"})
    paths = [path for path, _ in sparkplug_sink_problems(sink, ["meter"])]
    assert paths == [("group_id",), ("edge_node_id",), ("primary_host",), ("device_ids", "meter")]


def test_device_ids_must_name_devices_and_stay_unique() -> None:
    sink = _sink(device_ids={"meter": "press", "ghost": "g"})
    problems = dict(sparkplug_sink_problems(sink, ["meter", "press"]))
    assert "no device named 'ghost'" in problems[("device_ids", "ghost")]
    assert "share the Sparkplug device id 'press'" in problems[("device_ids", "meter")]
    # Without the device names (a sink built alone) only the ids are checked.
    assert sparkplug_sink_problems(sink, None) == []


def test_a_device_id_must_not_be_taken_by_a_metric_unit_nor_differ_only_in_case() -> None:
    """Found by the plant-engineer trial: ``device_ids: {cnc-1: demo-plant}`` passed
    ``check``, so the CNC and the plant total published on one Sparkplug device, both
    with ``Edge Metrics/Energy/15m/energy_kwh``: two units' values under one name
    [tck-id-topic-structure-namespace-unique-device-id]. Ids equal but for case are as bad
    for a host that does not tell them apart (Ignition)
    [tck-id-case-sensitivity-sparkplug-ids]."""
    sink = _sink(device_ids={"cnc-1": "demo-plant"})
    problems = dict(sparkplug_sink_problems(sink, ["cnc-1"], units=["demo-plant"]))
    assert (
        "cnc-1, demo-plant would share the Sparkplug device id 'demo-plant'"
        in (problems[("device_ids", "cnc-1")])
    )
    sink = _sink(device_ids={"cnc-1": "Press-1"})
    problems = dict(sparkplug_sink_problems(sink, ["cnc-1", "press-1"]))
    assert "'Press-1' and 'press-1' differ only in case" in problems[("device_ids", "cnc-1")]
    # A unit that is an agent device too (a meter's metrics) is no second owner.
    assert sparkplug_sink_problems(_sink(), ["meter"], units=["meter"]) == []


def test_check_finds_a_device_id_taken_by_the_plant_total(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    text = PLANT.replace("STATE", str(tmp_path)).replace("{meter: Meter 1}", "{meter: line-1}")
    metrics = "metrics:\n  meters: [{device: meter, power: {tag: p}}]\n  plant_total: [meter]\n"
    path.write_text(text + metrics)
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"SPB_USER": "edge", "SPB_PASSWORD": "s3cret"})
    assert any(
        ":16: sinks[0].device_ids.meter: devices meter, line-1 would share" in p
        for p in raised.value.problems
    ), raised.value.problems


@pytest.mark.parametrize(
    ("device_ids", "metrics", "found"),
    [
        # Reports are on by default (1d is a default window) and go to device = the plant
        # name whether or not plant_total is set (metrics/reports.py report_batch).
        ("{meter: line-1}", "", True),
        # Compared case-insensitively, like every id (Ignition does not tell case apart).
        ("{meter: Line-1}", "", True),
        (
            "{meter: line-1}",
            "  windows: [15m, shift]\n  shifts: [{name: day, start: '06:00'}]\n",
            True,
        ),
        # No report, no plant total: nothing goes to the plant's name.
        ("{meter: line-1}", "  windows: [15m]\n", False),
        ("{meter: line-1}", "  reports: {daily: false}\n", False),
    ],
)
def test_check_finds_a_device_mapped_onto_the_plant_that_reports_go_to(
    tmp_path: Path, device_ids: str, metrics: str, found: bool
) -> None:
    """The plant's name is a metric unit whenever its reports are on, not only with
    plant_total: ``device_ids {meter: line-1}`` made the meter's windows and the plant's
    reports share one Sparkplug device (review of the delta since 939608a)."""
    path = tmp_path / "plant.yaml"
    text = PLANT.replace("STATE", str(tmp_path)).replace("{meter: Meter 1}", device_ids)
    meters = "metrics:\n  meters: [{device: meter, power: {tag: p}}]\n"
    path.write_text(text + meters + metrics)
    env = {"SPB_USER": "edge", "SPB_PASSWORD": "s3cret"}
    if not found:
        load_config(path, env=env)
        return
    with pytest.raises(ConfigError) as raised:
        load_config(path, env=env)
    assert any("line-1" in p.casefold() and "device_ids" in p for p in raised.value.problems), (
        raised.value.problems
    )


def test_a_password_needs_a_username() -> None:
    assert sparkplug_sink_problems(_sink(password="x")) == [
        (("password",), "a password needs a username")
    ]


def test_check_reports_sparkplug_problems_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(
        PLANT.replace("STATE", str(tmp_path)).replace("group_id: Plant1", "group_id: a/b")
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"SPB_USER": "edge", "SPB_PASSWORD": "s3cret"})
    assert any(":12: sinks[0].group_id: 'a/b' holds '/'" in p for p in raised.value.problems)


def test_the_scan_rate_is_the_shortest_poll_interval_in_ms() -> None:
    def tag(name: str, interval: float) -> TagInfo:
        return TagInfo("d", "g", name, "float32", None, interval)

    devices = [DeviceInfo.of("d", "modbus", [tag("a", 2.0), tag("b", 0.25)])]
    assert scan_rate_ms(devices) == 250
    assert scan_rate_ms([]) == 0


def test_the_sink_is_one_of_the_plant_file_sink_types() -> None:
    assert "sparkplug" in str(PlantConfig.model_json_schema()["$defs"]["SparkplugSinkConfig"])

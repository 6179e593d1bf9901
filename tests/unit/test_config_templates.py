"""Device templates in the plant file: expansion, overrides, roles, user templates, reload,
the bundled library and ``edge-agent templates``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_agent.bundled import templates_dir
from edge_agent.cli import main
from edge_agent.config import ModbusDeviceConfig, ModbusTag, PlantConfig
from edge_agent.config.loader import describe_error, load_config, parse_config
from edge_agent.config.template_files import library, load_template
from edge_agent.errors import ConfigError
from edge_agent.service.reload import plan_reload
from edge_agent.summary import render_summary
from simulators.templates import load_bundled, template_unit

BUNDLED = sorted(library())
LIBRARY = {
    "eastron-sdm630",
    "eastron-sdm120",
    "chint-dtsu666",
    "acrel-adl400",
    "schneider-iem3255",
    "janitza-umg96rm",
    "carlo-gavazzi-em24",
    "invt-gd20",
}

PLANT = """\
plant: {name: shop}
devices:
  - name: main
    template: eastron-sdm630
    connection: {transport: tcp, host: 10.0.0.10}
    unit_id: 3
"""


def _device(config: PlantConfig, index: int = 0) -> ModbusDeviceConfig:
    device = config.devices[index]
    assert isinstance(device, ModbusDeviceConfig)
    return device


def _tags(device: ModbusDeviceConfig) -> dict[str, tuple[str, float, ModbusTag]]:
    """tag name -> (group, interval, the tag)."""
    return {t.name: (g.name, g.interval, t) for g in device.poll_groups for t in g.tags}


def test_the_library_has_the_models_the_issue_asks_for() -> None:
    assert set(BUNDLED) >= LIBRARY


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_template_is_valid_names_its_manual_and_passes_check(name: str) -> None:
    loaded = load_template(templates_dir() / f"{name}.yaml", name, describe_error)
    assert loaded.problems == []
    assert loaded.model is not None
    source = loaded.model.source
    assert "written from" in source.note.lower()
    assert all((source.document, source.publisher, source.version, source.date))
    config = parse_config(PLANT.replace("eastron-sdm630", name))
    device = _device(config)
    assert device.template == name
    assert sum(len(g.tags) for g in device.poll_groups) == len(loaded.model.tags())
    assert f"template {name}" in render_summary(config, "plant.yaml")
    # ... and it is a simulator profile: every tag has a quantity the models serve.
    assert len(template_unit(load_bundled(name)).points) == len(loaded.model.tags())


def test_the_template_gives_tags_defaults_and_device_type() -> None:
    device = _device(parse_config(PLANT))
    tags = _tags(device)
    group, interval, voltage = tags["voltage_l1"]
    assert (group, interval) == ("electrical", 1.0)
    assert voltage.table == "input"
    assert voltage.address == 0
    assert voltage.type == "float32"
    assert tags["energy_import"][:2] == ("energy", 10.0)
    assert device.device_type == "power-meter"
    assert device.max_registers_per_read == 80
    assert device.unit_id == 3


def test_the_device_wins_over_the_template_defaults() -> None:
    text = PLANT + "    device_type: main-incomer\n    max_registers_per_read: 40\n"
    device = _device(parse_config(text))
    assert device.device_type == "main-incomer"
    assert device.max_registers_per_read == 40


def test_interval_for_every_group_or_by_group() -> None:
    every = _device(parse_config(PLANT + "    interval: 5s\n"))
    assert {g.interval for g in every.poll_groups} == {5.0}
    by_group = _device(parse_config(PLANT + "    interval: {energy: 1m}\n"))
    assert {g.name: g.interval for g in by_group.poll_groups} == {"electrical": 1, "energy": 60}
    assert by_group.interval == {"energy": 60.0}  # kept as written


def test_overrides_change_or_leave_out_single_tags() -> None:
    text = PLANT + (
        "    overrides:\n"
        "      voltage_l1: {scale: 0.1, unit: kV, description: busbar}\n"
        "      reactive_power_l3: {enabled: false}\n"
    )
    tags = _tags(_device(parse_config(text)))
    voltage = tags["voltage_l1"][2]
    assert (voltage.scale, voltage.unit, voltage.description) == (0.1, "kV", "busbar")
    assert voltage.address == 0
    assert "reactive_power_l3" not in tags
    assert "reactive_power_l2" in tags


def test_own_poll_groups_come_first_and_the_templates_follow() -> None:
    text = PLANT + (
        "    poll_groups:\n"
        "      - {name: extra, interval: 1m, tags: [{name: hours, table: input, address: 258,"
        " type: float32}]}\n"
    )
    device = _device(parse_config(text))
    assert [g.name for g in device.poll_groups] == ["extra", "electrical", "energy"]


def test_the_template_leaves_the_builders_data_alone_when_devices_share_an_alias() -> None:
    text = """\
plant: {name: shop}
devices:
  - &meter
    name: a
    template: eastron-sdm630
    connection: {transport: tcp, host: 10.0.0.10}
    overrides: {voltage_l1: {scale: 0.5}}
  - <<: *meter
    name: b
    unit_id: 2
"""
    config = parse_config(text)
    for index in (0, 1):
        assert _tags(_device(config, index))["voltage_l1"][2].scale == 0.5


def test_metrics_entries_take_the_templates_role() -> None:
    text = (
        PLANT
        + """\
  - name: fan
    template: invt-gd20
    connection: {transport: tcp, host: 10.0.0.10}
    unit_id: 4
metrics:
  meters: [{device: main}, {device: main, name: main-counter, counter: {tag: energy_export}}]
  machines: [{device: fan}]
"""
    )
    metrics = parse_config(text).metrics
    assert metrics is not None
    role, own = metrics.meters
    assert role.counter is not None
    assert role.power is not None
    assert (role.counter.tag, role.counter.unit) == ("energy_import", "kWh")
    assert (role.power.tag, role.power.unit) == ("power_active", "W")
    assert own.counter is not None
    assert own.counter.tag == "energy_export"
    assert own.power is None  # an entry that gives one source keeps to it
    (machine,) = metrics.machines
    assert machine.state is not None
    assert machine.state.tag == "state"
    assert machine.state.map["forward"] == "run"


def _user_dir(tmp_path: Path, title: str = "Ours") -> Path:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    text = (templates_dir() / "eastron-sdm120.yaml").read_text()
    text = text.replace("template: eastron-sdm120", "template: eastron-sdm630")
    text = text.replace("title: Eastron SDM120 single-phase energy meter", f"title: {title}")
    (folder / "eastron-sdm630.yaml").write_text(text)
    return folder


def test_a_users_template_wins_over_the_bundled_one(tmp_path: Path) -> None:
    _user_dir(tmp_path)
    plant = tmp_path / "plant.yaml"
    plant.write_text(PLANT.replace("devices:", "templates_dir: templates\ndevices:"))
    tags = _tags(_device(load_config(plant)))
    assert "voltage" in tags  # the SDM120 map under the SDM630's name
    assert "voltage_l1" not in tags


def test_a_missing_templates_dir_is_named(tmp_path: Path) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text(PLANT.replace("devices:", "templates_dir: mine\ndevices:"))
    with pytest.raises(ConfigError) as caught:
        load_config(plant)
    assert caught.value.problems == [
        f"{plant}:2: templates_dir: {tmp_path / 'mine'} is not a directory"
    ]


def test_a_reload_reads_a_changed_template_again(tmp_path: Path) -> None:
    folder = _user_dir(tmp_path)
    plant = tmp_path / "plant.yaml"
    plant.write_text(PLANT.replace("devices:", "templates_dir: templates\ndevices:"))
    before = load_config(plant)
    template = folder / "eastron-sdm630.yaml"
    template.write_text(template.read_text().replace("address: 72,", "address: 342,"))
    after = load_config(plant)
    assert _tags(_device(after))["energy_import"][2].address == 342
    plan = plan_reload(before, after)
    assert plan.devices_changed == ("main",)
    assert plan.needs_restart == ()


def test_templates_dir_alone_is_applied_live(tmp_path: Path) -> None:
    _user_dir(tmp_path)
    plant = tmp_path / "plant.yaml"
    plant.write_text(PLANT)
    before = load_config(plant)
    plant.write_text(PLANT.replace("devices:", "templates_dir: templates\ndevices:"))
    plan = plan_reload(before, load_config(plant))
    assert plan.devices_changed == ("main",)
    assert "templates_dir" not in plan.needs_restart


# --------------------------------------------------------------------------- the command


def test_templates_list_names_every_template_and_its_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["templates", "list"]) == 0
    out = capsys.readouterr().out
    for name in BUNDLED:
        assert name in out
    assert max(len(line) for line in out.splitlines()) <= 80  # an SSH session's width
    assert main(["templates", "show", "eastron-sdm630"]) == 0
    assert "Zhejiang Eastron Electronic Co., Ltd." in capsys.readouterr().out


def test_templates_list_marks_a_users_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["templates", "list", "--dir", str(_user_dir(tmp_path, "Our own map"))]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("eastron-sdm630"))
    assert "[yours]" in line
    assert "Our own map" in line


def test_templates_show_prints_the_register_map_and_the_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["templates", "show", "carlo-gavazzi-em24"]) == 0
    out = capsys.readouterr().out
    assert str(templates_dir() / "carlo-gavazzi-em24.yaml") in out
    row = next(x.split() for x in out.splitlines() if x.startswith("frequency "))
    assert row[:8] == ["frequency", "holding", "55", "0x0037", "int16", "-", "0.1", "Hz"]
    row = next(x.split() for x in out.splitlines() if x.startswith("power_active "))
    assert row[4:6] == ["int32", "CDAB"]


def test_templates_show_an_unknown_name_suggests_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "show", "eastron-sdm603"]) == 2
    err = capsys.readouterr().err
    assert "unknown template 'eastron-sdm603' (did you mean 'eastron-sdm630'?)" in err


def test_templates_show_a_broken_template_lists_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    shutil.copy(templates_dir() / "invt-gd20.yaml", folder / "invt-gd20.yaml")
    path = folder / "invt-gd20.yaml"
    path.write_text(path.read_text().replace("type: int16, scale: 0.1", "type: int61, scale: 0.1"))
    assert main(["templates", "show", "invt-gd20", "--dir", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:")
    assert "'int61' is not one of" in err


def test_a_drive_serves_its_own_state_codes() -> None:
    """INVT's SW1: 1 forward running, 3 stop, 4 fault, 5 power off (the model: 0-3)."""
    unit = template_unit(load_bundled("invt-gd20"))
    state = next(point for point in unit.points if point.name == "state")
    assert state.codes == {0: 5, 1: 3, 2: 1, 3: 4}


def test_the_device_description_names_its_template() -> None:
    """The MQTT meta message and the InfluxDB sink take the template from the catalog."""
    config = parse_config(PLANT, "plant.yaml")
    described = _device(config).describe()
    assert described.template == "eastron-sdm630"
    assert described.tags["voltage_l1"].unit == "V"


# --------------------------------------------------------------------------- roles and overrides


def _metered(overrides: str) -> str:
    return PLANT + f"    overrides: {overrides}\nmetrics:\n  meters: [{{device: main}}]\n"


def test_leaving_out_the_roles_tag_is_named_not_guessed_at() -> None:
    # Not "did you mean 'energy_export'?": that would count the export as the import.
    with pytest.raises(ConfigError) as caught:
        parse_config(_metered("{energy_import: {enabled: false}}"))
    assert caught.value.problems == [
        "plant.yaml:9: metrics.meters[0]: the meter role of template 'eastron-sdm630' "
        "reads 'energy_import' as its counter, which device 'main' leaves out (overrides, "
        "line 7): keep the tag, or give counter or power yourself"
    ]


def test_a_unit_override_of_a_roles_tag_reaches_the_role() -> None:
    metrics = parse_config(
        _metered(
            "{power_active: {unit: kW, scale: 0.001}, energy_import: {unit: MWh, scale: 0.001}}"
        )
    )
    assert metrics.metrics is not None
    (meter,) = metrics.metrics.meters
    assert meter.power is not None
    assert meter.counter is not None
    assert (meter.power.tag, meter.power.unit) == ("power_active", "kW")
    assert (meter.counter.tag, meter.counter.unit) == ("energy_import", "MWh")


def test_a_unit_override_without_a_scale_would_relabel_not_convert() -> None:
    """W -> kW with the template's scale: 2002.9 W shown as 2002.9 kW, and the meter
    role counting 1000x the power. The override must say the scale that converts."""
    with pytest.raises(ConfigError) as caught:
        parse_config(_metered("{power_active: {unit: kW}}"))
    (problem,) = caught.value.problems
    assert "overrides.power_active.unit" in problem
    assert "does not convert the value" in problem
    assert "scale: 0.001" in problem
    # Given the scale, it converts; the template's own scale keeps a corrected label.
    parse_config(_metered("{power_active: {unit: kW, scale: 0.001}}"))
    parse_config(_metered("{power_active: {unit: kW, scale: 1}}"))


def test_a_unit_override_the_role_cannot_use_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_metered("{power_active: {unit: hp}}"))
    assert caught.value.problems == [
        "plant.yaml:9: metrics.meters[0]: the meter role of template 'eastron-sdm630' "
        "reads 'power_active' as its power in W, but device 'main' gives it unit 'hp' "
        "(overrides, line 7): write a unit of W, kW, MW, or give counter or power yourself"
    ]


def test_leaving_out_a_machines_state_tag_is_named() -> None:
    text = PLANT.replace("eastron-sdm630", "invt-gd20")
    text += "    overrides: {state: {enabled: false}}\nmetrics:\n  machines: [{device: main}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.problems == [
        "plant.yaml:9: metrics.machines[0]: the machine role of template 'invt-gd20' reads "
        "'state' as its state, which device 'main' leaves out (overrides, line 7): keep the "
        "tag, or give state or state_from_power yourself"
    ]


def test_a_templates_role_unit_must_match_its_tags_unit(tmp_path: Path) -> None:
    folder = _user_dir(tmp_path)
    path = folder / "eastron-sdm630.yaml"
    text = path.read_text()
    assert "counter: {tag: energy_import, unit: kWh}" in text
    path.write_text(text.replace("energy_import, unit: kWh}", "energy_import, unit: Wh}"))
    loaded = load_template(path, "eastron-sdm630", describe_error)
    assert loaded.model is None
    line = 1 + path.read_text().splitlines().index("    counter: {tag: energy_import, unit: Wh}")
    assert loaded.problems == [
        f"{path}:{line}: roles.meter.counter.unit: 'Wh', but tag 'energy_import' is in 'kWh'"
    ]


def test_a_template_reads_no_environment_and_says_so(tmp_path: Path) -> None:
    path = _user_dir(tmp_path, title="${HOME}") / "eastron-sdm630.yaml"
    line = 1 + path.read_text().splitlines().index("title: ${HOME}")
    loaded = load_template(path, "eastron-sdm630", describe_error)
    assert loaded.model is None
    # Not "HOME is not set" (it is: a template just never reads it), and said once: not
    # again as "title: string should have at least 1 character".
    assert loaded.problems == [
        f"{path}:{line}: title: a template does not read environment variables "
        "(${HOME}); write the value itself, the same for every device"
    ]


def test_templates_count_toward_the_plant_files_limits(tmp_path: Path) -> None:
    from edge_agent.config.loader import LoadLimits

    loaded = load_template(templates_dir() / "eastron-sdm630.yaml", "x", describe_error)
    device = PLANT.split("devices:\n", 1)[1]
    text = PLANT + device.replace("main", "second").replace("unit_id: 3", "unit_id: 4")
    plant = tmp_path / "plant.yaml"
    plant.write_text(text)
    # The plant file and one expanded device fit; the second device's copy does not.
    limits = LoadLimits(max_values=100 + loaded.values * 3 // 2)
    with pytest.raises(ConfigError) as caught:
        load_config(plant, limits=limits)
    assert caught.value.problems == [
        f"{plant}:8: devices[1].template: the templates expand the plant to more than "
        f"{limits.max_values:,} values (the limit)"
    ]
    # ... and a template file alone is read within the plant file's limits.
    with pytest.raises(ConfigError) as caught:
        load_config(plant, limits=LoadLimits(max_values=200))
    (problem,) = caught.value.problems[:1]
    assert "eastron-sdm630.yaml" in problem
    assert "more than 200 values (the limit)" in problem

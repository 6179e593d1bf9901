"""What a reload restarts: only what changed, plus neighbours on a shared connection."""

from __future__ import annotations

from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.service.reload import ReloadPlan, plan_reload

BASE = """\
plant: {name: line-1, site: Hall 3}
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 10.0.0.10, port: 502}
    unit_id: 1
    poll_groups: [{name: fast, interval: 1s, tags: [{name: v, address: 0}]}]
  - name: press
    driver: modbus
    connection: {transport: tcp, host: 10.0.0.10, port: 502}
    unit_id: 2
    poll_groups: [{name: fast, interval: 1s, tags: [{name: s, address: 0}]}]
  - name: compressor
    driver: modbus
    connection: {transport: tcp, host: 10.0.0.20, port: 502}
    unit_id: 1
    poll_groups: [{name: fast, interval: 1s, tags: [{name: p, address: 0}]}]
sinks:
  - {name: broker, type: mqtt, host: 10.0.0.5, password: "${MQTT_PASSWORD}", username: agent}
  - {name: backup, type: mqtt, host: 10.0.0.6}
"""
ENV = {"MQTT_PASSWORD": "s3cret-one"}


def _config(text: str = BASE, **env: str) -> PlantConfig:
    return parse_config(text, "plant.yaml", env={**ENV, **env})


def test_same_file_changes_nothing() -> None:
    plan = plan_reload(_config(), _config())
    assert plan == ReloadPlan()
    assert plan.unchanged
    assert plan.describe() == {}


def test_a_changed_device_restarts_with_its_gateway_neighbours_only() -> None:
    new = _config(BASE.replace("{name: s, address: 0}", "{name: s, address: 1}"))
    plan = plan_reload(_config(), new)
    assert plan.devices_changed == ("press",)
    # meter shares 10.0.0.10:502 with press: one connection, one request queue.
    assert plan.devices_restarted == ("meter",)
    assert set(plan.devices_to_stop) == set(plan.devices_to_start) == {"meter", "press"}
    assert "compressor" not in plan.devices_to_stop
    assert plan.sinks_changed == plan.sinks_added == plan.sinks_removed == ()


def test_device_alone_on_its_connection_restarts_alone() -> None:
    new = _config(BASE.replace("interval: 1s, tags: [{name: p", "interval: 5s, tags: [{name: p"))
    plan = plan_reload(_config(), new)
    assert plan.devices_changed == ("compressor",)
    assert plan.devices_restarted == ()


def test_added_and_removed_devices_touch_their_connections() -> None:
    removed = BASE.split("  - name: compressor")[0] + "sinks:" + BASE.split("sinks:")[1]
    plan = plan_reload(_config(), _config(removed))
    assert plan.devices_removed == ("compressor",)
    assert plan.devices_to_start == ()
    added = BASE.replace(
        "sinks:",
        "  - name: pump\n    driver: modbus\n"
        "    connection: {transport: tcp, host: 10.0.0.20, port: 502}\n    unit_id: 2\n"
        "    poll_groups: [{name: fast, interval: 1s, tags: [{name: q, address: 0}]}]\nsinks:",
    )
    plan = plan_reload(_config(), _config(added))
    assert plan.devices_added == ("pump",)
    assert plan.devices_restarted == ("compressor",)


def test_sinks_by_name_and_a_new_secret_counts_as_a_change() -> None:
    plan = plan_reload(_config(), _config(MQTT_PASSWORD="s3cret-two"))
    assert plan.sinks_changed == ("broker",)
    assert plan.devices_to_stop == ()
    # The plan names what changed, never the values.
    assert "s3cret" not in repr(plan.describe())
    gone = BASE.replace("  - {name: backup, type: mqtt, host: 10.0.0.6}\n", "")
    assert plan_reload(_config(), _config(gone)).sinks_removed == ("backup",)
    assert plan_reload(_config(gone), _config()).sinks_added == ("backup",)


def test_new_plant_identity_restarts_every_sink() -> None:
    plan = plan_reload(_config(), _config(BASE.replace("Hall 3", "Hall 4")))
    assert plan.sinks_changed == ("broker", "backup")
    assert plan.devices_to_stop == ()


def test_logging_service_and_restart_only_settings() -> None:
    extra = "logging: {level: debug}\nservice: {status_interval: 10s}\nstate_dir: /srv/edge\n"
    plan = plan_reload(_config(), _config(BASE + extra))
    assert plan.logging_changed
    assert plan.service_changed
    assert plan.needs_restart == ("state_dir",)
    assert plan.devices_to_stop == ()


def test_an_influxdb_sink_restarts_when_a_device_type_or_label_changes() -> None:
    """Its measurements and tags come from the devices' type and labels: a sink that kept
    the old ones would write the next points under the old names."""
    influx = (
        "  - {name: tsdb, type: influxdb, url: 'http://10.0.0.7:8086', org: o, bucket: b,"
        " measurement: device_type}\n"
    )
    base = BASE + influx
    typed = base.replace("    unit_id: 2\n", "    unit_id: 2\n    device_type: press\n")
    plan = plan_reload(_config(base), _config(typed))
    assert plan.sinks_changed == ("tsdb",), "the MQTT sinks do not use device types"
    assert plan.devices_changed == ("press",)
    labelled = typed.replace(
        "    device_type: press\n", "    device_type: press\n    labels: {line: a}\n"
    )
    assert plan_reload(_config(typed), _config(labelled)).sinks_changed == ("tsdb",)
    interval = base.replace("interval: 1s, tags: [{name: p", "interval: 5s, tags: [{name: p")
    assert plan_reload(_config(base), _config(interval)).sinks_changed == ()


def test_an_influxdb_sink_restarts_when_a_unit_changes() -> None:
    """Units are its ``unit`` tag: a sink that kept the old ones would mislabel values."""
    influx = "  - {name: tsdb, type: influxdb, url: 'http://10.0.0.7:8086', org: o, bucket: b}\n"
    base = BASE + influx
    assert "{name: p" in base
    watts = base.replace("{name: p", "{name: p, unit: W", 1)
    kilowatts = base.replace("{name: p", "{name: p, unit: kW", 1)
    plan = plan_reload(_config(watts), _config(kilowatts))
    assert plan.sinks_changed == ("tsdb",), "the MQTT sinks take the metadata live"


def test_outbox_settings_wait_for_a_restart() -> None:
    plan = plan_reload(_config(), _config(BASE + "outbox: {max_bytes: 2GiB}\n"))
    assert plan.needs_restart == ("outbox",)
    assert plan.sinks_changed == ()


def test_a_new_plant_identity_reaches_the_metrics_only_at_the_next_start() -> None:
    metrics = "metrics:\n  meters: [{device: meter, power: {tag: v}}]\n"
    plan = plan_reload(_config(BASE + metrics), _config(BASE.replace("Hall 3", "Hall 4") + metrics))
    assert plan.sinks_changed == ("broker", "backup")
    assert plan.needs_restart == ("plant (for the metrics)",)
    # Without metrics, a new identity is applied live in full.
    assert plan_reload(_config(), _config(BASE.replace("Hall 3", "Hall 4"))).needs_restart == ()

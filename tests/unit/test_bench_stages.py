"""The benchmark's pipeline stages and loss accounting, without running anything.

The metrics section generated for a synthetic plant must be a valid plant file (the
agent would refuse to start otherwise); the per-sink loss is appended minus confirmed
from the agent's counters, and a sink that did not confirm everything fails the
"values lost" target even when the MQTT subscriber saw every value.
"""

from __future__ import annotations

from typing import Any

from bench.agent_metrics import losses, window_counts
from bench.outage import _subscriber_view
from bench.plant import PlantSpec, agent_document, dump
from bench.report import check_targets
from bench.stages import metrics_section
from edge_agent.config.loader import parse_config


def _plant(spec: PlantSpec) -> dict[str, Any]:
    ports = {spec.device_name(i): 20_000 + i for i in range(spec.devices)}
    sinks = [{"name": "mqtt", "type": "mqtt", "host": "127.0.0.1", "topic": "b/{device}"}]
    return agent_document(
        spec,
        ports,
        plant="bench",
        state_dir="/tmp/unused",
        sinks=sinks,
        extra={"metrics": metrics_section(spec)},
    )


def test_the_generated_metrics_section_is_a_valid_plant_file() -> None:
    spec = PlantSpec(devices=4, tags=24, interval_s=1.0)
    config = parse_config(dump(_plant(spec)), "bench.yaml", env={})
    assert config.metrics is not None
    assert [m.device for m in config.metrics.meters] == ["dev003"]  # the power meter
    assert [m.device for m in config.metrics.machines] == ["dev000", "dev001", "dev002"]


def test_devices_too_small_for_the_mix_get_no_metrics() -> None:
    section = metrics_section(PlantSpec(devices=4, tags=2, interval_s=1.0))
    assert "meters" not in section
    assert "machines" not in section


SCRAPE = {
    "edge_agent_pipeline_samples": 1000.0,
    "edge_agent_outbox_appended_samples": 1010.0,
    "edge_agent_sink_samples_sent{mqtt}": 1010.0,
    "edge_agent_sink_samples_sent{influxdb}": 1000.0,
    "edge_agent_buffer_batches{mqtt}": 0.0,
    "edge_agent_buffer_batches{influxdb}": 1.0,
    "edge_agent_device_skipped_ticks{dev000}": 2.0,
}


def test_window_counts_are_differences_of_the_two_scrapes() -> None:
    before = {k: v / 2 for k, v in SCRAPE.items()}
    counts = window_counts(before, SCRAPE)
    assert counts == {
        "collected": 500,
        "appended": 505,
        "sent": {"influxdb": 500, "mqtt": 505},
        "skipped_ticks": 1,
    }


def test_a_sink_that_confirmed_less_than_was_appended_has_lost_the_difference() -> None:
    result = losses(SCRAPE)
    assert result["appended_total"] == 1010
    assert result["mqtt"]["unconfirmed"] == 0
    assert result["influxdb"]["unconfirmed"] == 10
    assert result["influxdb"]["backlog_batches"] == 1


def test_unconfirmed_samples_of_any_sink_fail_the_loss_target() -> None:
    run: dict[str, Any] = {"delivery": {"values_lost": 0, "sink_unconfirmed": {"influxdb": 10}}}
    assert check_targets(run)["values lost == 0"] is False
    run["delivery"]["sink_unconfirmed"] = {"influxdb": 0, "mqtt": 0}
    assert check_targets(run)["values lost == 0"] is True


def test_the_outage_view_counts_distinct_batches_duplicates_and_gaps() -> None:
    spec = PlantSpec(devices=1, tags=10, interval_s=1.0)
    s = 1_000_000_000
    records = [
        [0, 10 * s, "dev000", "g0", 10, 10, False],
        [0, 11 * s, "dev000", "g0", 10, 10, True],
        [0, 11 * s, "dev000", "g0", 10, 10, True],  # QoS 1 redelivery
        [0, 14 * s, "dev000", "g0", 10, 10, False],  # ticks 12 and 13 never arrived
    ]
    view = _subscriber_view(records, spec, 0.0, 5.0)
    assert view["batches"] == 3
    assert view["duplicate_messages"] == 1
    assert view["historical_messages"] == 2
    assert view["ticks_missing_between_first_and_last"] == 2


def test_the_sparkplug_stage_replaces_the_json_mqtt_sink() -> None:
    import contextlib
    from pathlib import Path

    import pytest

    from bench.stages import StageContext, build_pipeline, counting_sink

    spec = PlantSpec(devices=1, tags=4, interval_s=1.0)
    with contextlib.ExitStack() as stack:
        context = StageContext(1883, Path("/tmp/unused"), stack, spec)
        sparkplug = build_pipeline(["sparkplug"], context)
        json_only = build_pipeline(["metrics"], context)
        with pytest.raises(ValueError, match="replaces the mqtt stage"):
            build_pipeline(["sparkplug", "mqtt"], context)
    assert [s["type"] for s in sparkplug.sinks] == ["sparkplug"]
    assert [s["type"] for s in json_only.sinks] == ["mqtt"]
    assert counting_sink(["sparkplug", "outbox"]) == "sparkplug"
    assert counting_sink(None) == "mqtt"

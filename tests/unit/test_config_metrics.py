"""The metrics section of the plant file: models, defaults, and what they share with config."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import MqttSinkConfig, PlantIdentity, base
from edge_agent.config import metrics as config_metrics
from edge_agent.config.carriers import grid_factor
from edge_agent.config.loader import load_config
from edge_agent.config.metrics import CoalEquivalent, MetricsConfig
from edge_agent.config.metrics_summary import summary_lines
from edge_agent.config.mqtt import mqtt_sink_problems
from edge_agent.errors import ConfigError

DEMO = Path(__file__).resolve().parent.parent.parent / "configs" / "demo-plant.yaml"


def test_the_metrics_models_follow_the_core_rules() -> None:
    # The metrics section builds on the same base types as every other section.
    assert config_metrics.Name is base.Name
    assert issubclass(config_metrics.MetricsConfig, base.Strict)
    assert config_metrics.MeterConfig.model_config == base.Strict.model_config


def test_defaults_are_documented_values() -> None:
    metrics = MetricsConfig()
    assert metrics.windows == ["15m", "1h", "1d"]
    assert metrics.coal_equivalent.coefficient == 0.1229  # GB/T 2589-2020, equivalent value
    # The latest national average of the table: 2023, MEE & NBS (docs/METRICS.md).
    assert grid_factor(metrics.grid_emission_factor)[0] == 0.5306
    assert CoalEquivalent(method="equal_value", kgce_per_kwh=0.3).coefficient == 0.3


def test_the_demo_plant_configures_every_metric() -> None:
    plant = load_config(DEMO, env={})
    assert plant.metrics is not None
    meters = {m.metric_name for m in plant.metrics.meters}
    assert meters == {"line-meter", "compressor-meter", "oven-meter", "dryer-gas"}
    machines = {m.metric_name for m in plant.metrics.machines}
    assert machines == {"cnc-1", "press-1", "compressor-1", "oven-1"}
    assert [b.name for b in plant.metrics.baselines] == ["oven-savings"]
    lines = summary_lines(plant.metrics)
    assert lines[0] == "metrics: windows 1m, 15m, 1h, 1d, shift; grace 5s"
    assert "  plant total: line-meter + compressor-meter + oven-meter" in lines


def test_metrics_topic_placeholders_are_checked() -> None:
    plant = PlantIdentity(name="p")
    good = MqttSinkConfig(
        name="s", type="mqtt", host="h", metrics_topic="m/{plant}/{device}/{window}/{family}"
    )
    assert mqtt_sink_problems(good, plant) == []
    bad = MqttSinkConfig(name="s", type="mqtt", host="h", metrics_topic="m/{device}/{group}")
    ((field, message),) = mqtt_sink_problems(bad, plant)
    assert field == "metrics_topic"
    assert "unknown placeholder {group}" in message


def test_a_file_without_metrics_is_still_valid(tmp_path: Path) -> None:
    text = DEMO.read_text()
    path = tmp_path / "plant.yaml"
    path.write_text(text[: text.index("\nmetrics:")])
    assert load_config(path, env={}).metrics is None
    path.write_text(text.replace("windows: [1m, 15m, 1h, 1d, shift]", "windows: [1m, 1m]"))
    with pytest.raises(ConfigError, match=r"duplicate window '1m'"):
        load_config(path, env={})

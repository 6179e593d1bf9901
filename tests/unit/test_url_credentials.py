"""Credentials written into a URL (issue 13, item 15): never printed by ``check``, never logged."""

from __future__ import annotations

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.errors import ConfigError
from edge_agent.redaction import secret_values
from edge_agent.summary import render_summary

PLANT = """\
plant: {name: line-1}
state_dir: /nonexistent/state
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1}
    poll_groups:
      - interval: 1s
        tags: [{name: power, table: input, address: 0, type: float32}]
sinks:
  - name: tsdb
    type: influxdb
    url: URL
    org: plant
    bucket: edge
"""
PASSWORD = "s3cret-Pw!"
TOKEN = "tok-123456"


def test_check_prints_an_influxdb_url_without_its_password() -> None:
    url = f"https://edge:{PASSWORD}@influx.example:8086/?u=edge&p={TOKEN}"
    config = parse_config(PLANT.replace("URL", url), env={})
    summary = render_summary(config, "plant.yaml")
    assert PASSWORD not in summary
    assert TOKEN not in summary
    assert "sink tsdb: influxdb https://edge:***@influx.example:8086/?u=edge&p=*** " in summary


def test_a_password_in_a_url_is_a_secret_of_the_config() -> None:
    """So the log redaction (registered from secret_values) hides it wherever it appears."""
    url = f"http://edge:{PASSWORD}@influx.local:8086?token={TOKEN}"
    config = parse_config(PLANT.replace("URL", url), env={})
    assert {PASSWORD, TOKEN} <= secret_values(config)


def test_an_invalid_url_is_reported_without_its_password() -> None:
    url = f"ftp://edge:{PASSWORD}@influx.local:8086"
    with pytest.raises(ConfigError) as caught:
        parse_config(PLANT.replace("URL", url), env={})
    (problem,) = caught.value.problems
    assert PASSWORD not in problem
    assert "'ftp://edge:***@influx.local:8086' is not an http:// or https:// URL" in problem

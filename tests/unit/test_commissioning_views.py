"""The text that ``run --once``, ``status`` and ``demo`` put in front of a person."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.demo_screen import pack, round_number, value_text
from edge_agent.model import Quality
from edge_agent.oneshot import DeviceReading, GroupReading, TagReading, render_text, to_json
from edge_agent.service.status_view import StatusUnavailable, render_status, status_url

PLANT = """\
plant: {name: p}
state_dir: /tmp/x
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 5020}
    poll_groups:
      - {name: g, interval: 1s, tags: [{name: v, address: 0, type: uint16}]}
"""


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (14.545377731323242, "14.5"),
        (12.100000000000001, "12.1"),
        (0.9373589754, "0.937"),
        (123456.83, "123,456.8"),
        (42949600.01, "42,949,600.0"),
        (2.5, "2.50"),
        (0.0, "0.00"),
        (-3.14159, "-3.14"),
    ],
)
def test_numbers_on_the_demo_screen_are_rounded(value: float, shown: str) -> None:
    assert round_number(value) == shown


def test_value_text_keeps_labels_and_integers() -> None:
    assert value_text("run", "") == "run"
    assert value_text(True, "") == "True"
    assert value_text(1250000, "parts") == "1,250,000 parts"
    assert value_text(917, "") == "917"
    assert value_text(None, "kW") == "—"
    assert value_text(229.81, "V") == "229.8 V"


def test_pack_never_breaks_a_value_from_its_unit() -> None:
    texts = ["voltage=229.8 V", "ideal_cycle_time=95.0 s", "x=1", "a_very_long_name=" + "9" * 40]
    lines = pack(texts, 30)
    assert lines == [
        "voltage=229.8 V",
        "ideal_cycle_time=95.0 s  x=1",
        "a_very_long_name=" + "9" * 40,  # longer than the width: alone on its line
    ]
    assert pack([], 30) == []


def _readings() -> list[DeviceReading]:
    good = TagReading("voltage_l1", 229.84379577636719, "V", Quality.GOOD, "", "4365 D803")
    ghost = TagReading("ghost", None, "V", Quality.BAD, "exception code 2", "")
    odd = TagReading("ratio", float("nan"), "", Quality.UNCERTAIN, "nan", "7FC0 0000")
    return [
        DeviceReading("meter", [GroupReading("electrical", [good, ghost])]),
        DeviceReading("drive", [GroupReading("fast", [odd])]),
    ]


def test_run_once_text_shows_value_unit_quality_raw_and_reason() -> None:
    text = render_text(_readings())
    lines = text.splitlines()
    assert lines[0] == "meter: NOT all good"
    assert lines[1] == "  group electrical"
    voltage = lines[2].split()
    assert voltage == ["voltage_l1", "229.8437958", "V", "good", "[4365", "D803]"]
    ghost = lines[3].split()
    assert ghost[:3] == ["ghost", "-", "V"]
    assert ghost[3] == "bad"
    assert lines[3].endswith("exception code 2")
    assert lines[-1] == "1 of 3 tags good"


def test_run_once_json_is_valid_json_even_for_nan() -> None:
    document = json.loads(to_json(_readings()))
    assert document["good"] is False
    meter, drive = document["devices"]
    assert meter["device"] == "meter"
    assert meter["groups"][0]["tags"][0] == {
        "name": "voltage_l1",
        "value": 229.84379577636719,
        "unit": "V",
        "quality": "good",
        "reason": "",
        "raw": "4365 D803",
    }
    assert drive["groups"][0]["tags"][0]["value"] == "nan"


@pytest.mark.parametrize(
    ("service", "url"),
    [
        ("service: {health: {port: 9880}}\n", "http://127.0.0.1:9880"),
        ("service: {health: {listen: 0.0.0.0, port: 9881}}\n", "http://127.0.0.1:9881"),
        ("service: {health: {listen: '::', port: 9882}}\n", "http://[::1]:9882"),
        ("service: {health: {listen: 10.0.0.5, port: 9883}}\n", "http://10.0.0.5:9883"),
    ],
)
def test_status_asks_the_listener_of_the_plant_file(service: str, url: str) -> None:
    assert status_url(parse_config(PLANT + service, "p.yaml")) == url


def test_status_explains_a_plant_file_without_a_usable_listener() -> None:
    with pytest.raises(StatusUnavailable, match="health endpoint is disabled"):
        status_url(parse_config(PLANT, "p.yaml"))
    with pytest.raises(StatusUnavailable, match="port is 0"):
        status_url(parse_config(PLANT + "service: {health: {port: 0}}\n", "p.yaml"))


def test_status_rendering() -> None:
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
    document = {
        "state": "online",
        "healthy": False,
        "reasons": ["device press-1: offline for 312 s (exception code 11)"],
        "plant": "demo-plant",
        "version": "0.1.0",
        "uptime_s": 7200.0,
        "devices_total": 2,
        "device_states": {
            "line-meter": {"state": "online", "reason": "", "last_good": "2026-12-04T11:59:58Z"},
            "press-1": {"state": "offline", "reason": "exception code 11"},
        },
        "sinks": {"broker": {"connected": False, "backlog_batches": 12, "dropped_batches": 0}},
        "outbox": {
            "rows": 12,
            "bytes": 2097152,
            "max_bytes": 1073741824,
            "oldest": "2026-12-04T11:50:00.000Z",
            "writing": True,
            "dead_letters": 1,
        },
    }
    oldest_ns = int(datetime(2026, 12, 4, 11, 50, tzinfo=UTC).timestamp() * 1e9)
    text = render_status(document, {"broker": (12, oldest_ns)}, now=now)
    assert text.splitlines() == [
        "plant demo-plant: agent online, NOT healthy, up 2.0 h, version 0.1.0",
        "  ! device press-1: offline for 312 s (exception code 11)",
        "devices (2):",
        "  line-meter  online      last good read 2 s ago",
        "  press-1     offline     last good read never  exception code 11",
        "sinks (1):",
        "  broker  DOWN        backlog 12 batches, 12 undelivered in the outbox, oldest 10 min ago",
        "outbox: writing, 12 batches, 2.0 MiB of 1,024.0 MiB, oldest 10 min ago",
        "  dead letters: 1",
    ]


def test_the_bundled_configs_are_the_checkouts_configs() -> None:
    from pathlib import Path

    from edge_agent.bundled import configs_dir

    root = Path(__file__).resolve().parents[2]
    assert configs_dir().resolve() == (root / "configs").resolve()
    assert (configs_dir() / "demo-plant.yaml").is_file()


def test_run_json_without_once_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent.cli import main

    assert main(["run", "--json", "-c", "plant.yaml"]) == 2
    assert "--json goes with --once" in capsys.readouterr().err

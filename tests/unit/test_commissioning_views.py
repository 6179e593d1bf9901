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


def _gateway_says_nobody_is_there() -> list[DeviceReading]:
    """A wrong unit id behind a gateway: every read of 25 tags answers exception 11."""
    where = ", ".join(f"input {2 * n}-{2 * n + 1} (tag_{n})" for n in range(10))
    reason = f"exception code 11 (tcp://127.0.0.1:5020 function 4 0+50 unit 9: {where} and 15 more)"
    groups = [
        GroupReading(
            group,
            [TagReading(f"{group}_{n}", None, "V", Quality.BAD, reason, "") for n in range(count)],
        )
        for group, count in (("electrical", 20), ("energy", 5))
    ]
    return [DeviceReading("meter", groups, driver="modbus")]


def test_run_once_says_a_reason_every_tag_shares_once_with_a_hint() -> None:
    readings = _gateway_says_nobody_is_there()
    text = render_text(readings)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert len(lines) <= 25 + 2 + 8, text  # a line per tag, not a screenful per tag
    assert text.count("exception code 11") == 1
    assert lines[1].startswith("  all 25 tags bad: exception code 11 (tcp://127.0.0.1:5020")
    flat = " ".join(text.split())
    assert (
        "gateway target device failed to respond. hint: no device answered at this unit id: "
        "check unit_id and wiring"
    ) in flat
    assert flat.count("no device answered") == 1
    tag_lines = [line for line in lines if line.startswith("    electrical_")]
    assert len(tag_lines) == 20
    assert all(line.split()[-3:] == ["bad", "(as", "above)"] for line in tag_lines)
    assert lines[-1] == "0 of 25 tags good"
    # --json keeps every tag with its whole reason.
    document = json.loads(to_json(readings))
    reasons = [t["reason"] for g in document["devices"][0]["groups"] for t in g["tags"]]
    assert reasons == [readings[0].groups[0].tags[0].reason] * 25


def test_run_once_a_group_of_one_reason_is_said_for_the_group() -> None:
    bad = [TagReading(f"t{n}", None, "", Quality.BAD, "exception code 2", "") for n in range(3)]
    good = [TagReading("ok", 1, "", Quality.GOOD, "", "0001")]
    readings = [
        DeviceReading("m", [GroupReading("a", bad), GroupReading("b", good)], driver="modbus")
    ]
    lines = render_text(readings).splitlines()
    assert lines[:3] == ["m: NOT all good", "  group a", "    all 3 tags bad: exception code 2"]
    assert lines[-4].startswith("    t2")
    assert lines[-4].endswith("(as above)")
    assert lines[-3] == "  group b"
    assert lines[-2].startswith("    ok")
    assert not lines[-2].endswith("(as above)")


def test_run_once_words_modbus_reasons_with_a_hint() -> None:
    tags = [
        TagReading("ghost", None, "V", Quality.BAD, "exception code 2", ""),
        TagReading("ok", 1, "", Quality.GOOD, "", "0001"),
        TagReading("ghost2", None, "V", Quality.BAD, "exception code 2", ""),
        TagReading("slow", None, "", Quality.BAD, "timeout", ""),
    ]
    text = render_text([DeviceReading("meter", [GroupReading("g", tags)], driver="modbus")])
    assert all(len(line) <= 80 for line in text.splitlines()), text
    flat = " ".join(text.split())
    assert (
        "exception code 2 illegal data address. hint: the device has no such register: check the "
        "address, the table, and the manual's numbering (register 40001 is address 0)"
    ) in flat
    assert flat.count("illegal data address") == 1  # once per device, not per tag
    assert "timeout no answer. hint: nothing answered in time" in flat
    # Reasons of another kind, or of no kind, are shown as they are.
    plain = render_text([DeviceReading("meter", [GroupReading("g", tags)])])
    assert "illegal data address" not in plain


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (1, "illegal function"),
        (3, "illegal data value"),
        (4, "server device failure"),
        (6, "server device busy"),
        (10, "gateway path unavailable"),
    ],
)
def test_every_modbus_exception_a_read_answers_has_words(code: int, words: str) -> None:
    from drivers.registry import explain_reason

    explained = explain_reason("modbus", f"exception code {code}")
    assert explained is not None
    assert explained.words == words
    assert explained.hint
    assert explain_reason("modbus", "disconnected") is None
    assert explain_reason("opcua", f"exception code {code}") is None


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

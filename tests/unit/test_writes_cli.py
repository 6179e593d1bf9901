"""The pieces of ``edge-agent write`` and ``edge-agent audit`` that need no agent: the
value as typed, the result in words, ``--since``, and the audit table (through
``main``, in process)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config.loader import parse_config
from edge_agent.writes.audit import AuditLog, audit_directory
from edge_agent.writes.cli import parse_value, policy_note, render_result, since_ns

NOW_NS = 1_796_450_400_000_000_000  # 2026-12-05T06:00:00Z


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("6.5", 6.5),
        ("7", 7),
        ("-1e3", -1000.0),
        ("true", True),
        ("false", False),
        ("run", "run"),
        ('"6.5"', "6.5"),
        ("null", "null"),  # not a value: the text, which the agent then judges
        ("[1, 2]", "[1, 2]"),
        ("NaN", "NaN"),  # never a float NaN
        ("Infinity", "Infinity"),
        ("", ""),
    ],
)
def test_a_value_is_json_where_it_is_json_else_text(text: str, value: object) -> None:
    parsed = parse_value(text)
    assert parsed == value
    assert type(parsed) is type(value)


def test_since_takes_durations_and_times() -> None:
    assert since_ns("1h", NOW_NS) == NOW_NS - 3600 * 10**9
    assert since_ns("30m", NOW_NS) == NOW_NS - 1800 * 10**9
    assert since_ns("2d", NOW_NS) == NOW_NS - 2 * 86400 * 10**9
    assert since_ns("90s", NOW_NS) == NOW_NS - 90 * 10**9
    assert since_ns("2026-12-05T06:00Z") == NOW_NS
    assert since_ns("2026-12-05T14:00+08:00") == NOW_NS
    local = dt.datetime(2026, 12, 5, 6, 0).astimezone()  # no offset: the machine's time
    assert since_ns("2026-12-05T06:00") == int(local.timestamp()) * 10**9


def test_since_that_is_neither_says_what_it_takes() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"neither a duration \(1h, 30m, 2d\)"):
        since_ns("yesterday")


def _result(outcome: str, **fields: object) -> dict[str, object]:
    return {
        "id": "c1",
        "device": "press-1",
        "tag": "setpoint",
        "outcome": outcome,
        "reason": "",
        "requested": 6.5,
        "before": None,
        "read_back": None,
        "sent": "",
        "timing_ms": {"to_write": None, "to_confirm": None, "total": 0.4},
        **fields,
    }


def test_an_applied_result_in_words() -> None:
    text = render_result(
        _result(
            "applied",
            before=7.0,
            read_back=6.5,
            sent="holding 10 <- 0x0041 (function 6)",
            timing_ms={"to_write": 3.1, "to_confirm": 105.2, "total": 108.0},
        )
    )
    assert text.splitlines() == [
        "applied: press-1 setpoint = 6.5",
        "  before -> read back: 7.0 -> 6.5",
        "  sent: holding 10 <- 0x0041 (function 6)",
        "  timing: 3.1 ms to write, 105.2 ms to confirm, 108.0 ms in all",
    ]


def test_a_refusal_and_an_unknown_outcome_in_words() -> None:
    assert render_result(_result("refused", reason="device offline")).splitlines() == [
        "refused: press-1 setpoint = 6.5: device offline",
        "  timing: 0.4 ms in all",
    ]
    unknown = render_result(_result("unknown", reason="no answer", before=7.0)).splitlines()
    assert unknown[0] == "UNKNOWN OUTCOME: press-1 setpoint = 6.5: no answer"
    assert unknown[1] == "  before -> read back: 7.0 -> -"
    assert unknown[-1] == "  nobody knows whether the device took it: check the device"


PLANT = """\
plant: {{name: line-1}}
state_dir: {state_dir}
devices:
  - name: press-1
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1}}
    poll_groups:
      - interval: 1s
        tags:
          - {{name: setpoint, address: 10, write: {{channels: [cli], min: 0, max: 100}}}}
          - {{name: pressure, address: 20}}
"""


def _plant(tmp_path: Path, state_dir: str | None = None) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(PLANT.format(state_dir=state_dir or tmp_path / "state"))
    return path


def test_the_plant_file_s_word_on_a_command(tmp_path: Path) -> None:
    plant = parse_config(_plant(tmp_path).read_text())
    assert policy_note(plant, "press-1", "setpoint") is None
    assert policy_note(plant, "press-2", "setpoint") == (
        "'press-2' is not a device of this plant file (devices: press-1)"
    )


def _audit(tmp_path: Path) -> AuditLog:
    log = AuditLog(audit_directory(tmp_path / "state"), 10_000_000, 3)
    records: list[dict[str, object]] = [
        {"time": "2026-12-05T05:00:00.000Z", "device": "press-1", "tag": "setpoint"},
        {
            "time": "2026-12-05T06:00:00.000Z",
            "id": "m-7",
            "channel": "mqtt",
            "identity": "",
            "device": "oven-1",
            "method": "ack",
            "requested": {"alarm": 3},
            "outcome": "refused",
            "reason": "too old",
        },
        {
            "time": "2026-12-05T07:00:00.000Z",
            "id": "console-0123456789abcdef0123456789abcdef",
            "channel": "console",
            "identity": "li.wei",
            "device": "press-1",
            "tag": "mode",
            "requested": "run",
            "outcome": "applied",
        },
    ]
    for record in records:
        log.append(record)
    log.close()
    return log


def test_audit_prints_every_record_in_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _audit(tmp_path)
    assert main(["audit", "-c", str(_plant(tmp_path))]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == [
        *("time", "id", "channel", "identity", "device", "tag", "requested", "outcome", "reason")
    ]
    assert lines[2].split() == [
        *("2026-12-05T06:00:00.000Z", "m-7", "mqtt", "oven-1", "ack()", '{"alarm":', "3}"),
        *("refused", "too", "old"),
    ]
    # A long id is cut to its start (narrow; --json has it whole), enough to find it.
    assert lines[3].startswith("2026-12-05T07:00:00.000Z  console-0123456…  console  li.wei")
    assert lines[3].endswith("li.wei    press-1  mode      run           applied")
    assert err == ""


def test_audit_since_and_device_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _audit(tmp_path)
    plant = str(_plant(tmp_path))
    assert main(["audit", "-c", plant, "--since", "2026-12-05T06:00Z", "--json"]) == 0
    out, _ = capsys.readouterr()
    assert [json.loads(line)["time"][11:16] for line in out.splitlines()] == ["06:00", "07:00"]
    assert main(["audit", "-c", plant, "--device", "press-1", "--json"]) == 0
    out, _ = capsys.readouterr()
    assert [json.loads(line)["time"][11:16] for line in out.splitlines()] == ["05:00", "07:00"]


def test_audit_says_what_it_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _audit(tmp_path)
    with log.path.open("ab") as file:
        file.write(b'{"time": "2026-12-05T08:00')
    assert main(["audit", "-c", str(_plant(tmp_path)), "--json"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3
    assert err == f"{log.path}:4: skipped: torn last line (26 bytes, a crash mid-write)\n"


def test_audit_without_records_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _audit(tmp_path)
    assert main(["audit", "-c", str(_plant(tmp_path)), "--since", "2027-01-01T00:00Z"]) == 0
    out, _ = capsys.readouterr()
    assert out == f"no write commands recorded in that time ({tmp_path / 'state' / 'audit'})\n"
    # An audit directory without a record yet (emptied by hand, or a crash before the
    # first line): nothing recorded, which is an answer (exit 0).
    for path in (tmp_path / "state" / "audit").iterdir():
        path.unlink()
    assert main(["audit", "-c", str(_plant(tmp_path))]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (f"no write commands recorded ({tmp_path / 'state' / 'audit'})\n", "")


def test_audit_where_there_is_no_log_says_where_it_looked_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative state_dir read from another directory than the agent's (a trial: it
    printed "no write commands recorded (state/audit)" and exited 0)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    plant = _plant(tmp_path, "./state")
    assert main(["audit", "-c", str(plant)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    looked = elsewhere / "state" / "audit"
    assert err.startswith(f"edge-agent audit: no audit log at {looked} (no such directory)")
    assert "state_dir ./state is relative: it is taken from the directory the agent was" in err
    assert "EDGE_AGENT_STATE" not in err  # this file does not take it from there
    # The bundled files' way: from the agent's environment, ./state without it.
    monkeypatch.delenv("EDGE_AGENT_STATE", raising=False)
    plant = _plant(tmp_path, "${EDGE_AGENT_STATE:-./state}")
    assert main(["audit", "-c", str(plant)]) == 1
    _, err = capsys.readouterr()
    assert f"no audit log at {looked} (no such directory)" in err
    assert "takes state_dir from EDGE_AGENT_STATE, which is not set in this shell" in err
    assert "`edge-agent demo`: the temporary directory its banner prints" in err
    assert not (elsewhere / "state").exists()  # reading creates nothing

"""What `check` says about the mistakes of issue 14 §3 beyond the golden cases: the exit
code with warnings, state_dir resolved and checked, durations from code, the tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config import ModbusTag, PollGroup
from edge_agent.config.hints import address_hint, register_number, type_hint
from edge_agent.config.loader import parse_config
from edge_agent.errors import ConfigError
from edge_agent.state_dir import state_dir_problem

ROOT = Path(__file__).parent.parent.parent

PLANT = """\
plant: {{name: line-1}}
state_dir: {state_dir}
devices:
  - name: drive
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1}}
    poll_groups:
      - interval: 1s
        tags:
          - {{name: speed, address: {address}}}
"""


def _check(tmp_path: Path, capsys: pytest.CaptureFixture[str], **values: object) -> tuple[int, str]:
    plant = tmp_path / "plant.yaml"
    plant.write_text(PLANT.format(**{"state_dir": tmp_path / "state", "address": 0, **values}))
    code = main(["check", "-c", str(plant)])
    out, err = capsys.readouterr()
    return code, out + err


def test_warnings_alone_leave_check_at_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _check(tmp_path, capsys, address=40001)
    assert code == 0
    assert "plant.yaml:10: devices[0].poll_groups[0].tags[0].address: warning: 40001" in output
    assert ": valid, 1 warning" in output


def test_warnings_are_listed_with_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _check(tmp_path, capsys, address="40001, type: flaot32")
    assert code == 2
    assert "warning: 40001 looks like a register number" in output
    assert "'flaot32' is not one of" in output
    assert "1 problem and 1 warning; nothing started" in output


def test_check_shows_a_relative_state_dir_resolved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = _check(tmp_path, capsys, state_dir="./state")
    assert code == 0
    assert f"state directory {tmp_path / 'state'} (relative: from the current directory)" in output


def test_check_warns_when_state_dir_cannot_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    code, output = _check(tmp_path, capsys, state_dir=tmp_path / "file" / "state")
    assert code == 0
    assert re.search(r"plant.yaml:2: state_dir: warning: .*/file/state cannot be created: ", output)
    assert "is a file, not a directory" in output


def test_state_dir_problems() -> None:
    assert state_dir_problem(Path(__file__)) == f"{Path(__file__)} exists and is not a directory"


def test_state_dir_with_missing_parents_can_be_created(tmp_path: Path) -> None:
    assert state_dir_problem(tmp_path / "a" / "b" / "c") is None


def test_the_systemd_unit_gives_the_example_plants_its_state_directory() -> None:
    # A relative ./state resolves to /state under the unit (working directory /),
    # read-only there: the examples must not fall back to it under systemd.
    unit = (ROOT / "systemd" / "edge-agent.service").read_text()
    assert "StateDirectory=edge-agent\n" in unit
    assert "Environment=EDGE_AGENT_STATE=%S/edge-agent\n" in unit
    for plant in (ROOT / "configs").glob("*.yaml"):
        assert "state_dir: ${EDGE_AGENT_STATE:-./state}\n" in plant.read_text(), plant


def test_durations_built_in_code_stay_seconds() -> None:
    # Only the plant file must write units; models built in code keep plain seconds.
    group = PollGroup(interval=0.5, tags=[ModbusTag(name="a", address=0)])
    assert group.interval == 0.5


def test_a_bare_zero_needs_no_unit_and_quoted_numbers_do() -> None:
    text = PLANT.format(state_dir="/tmp/x", address=0)
    plant = parse_config(text + "    inter_frame_delay: 0\n", env={})
    assert plant.devices[0].inter_frame_delay == 0.0
    with pytest.raises(ConfigError, match=r"'?250'? has no unit: write 250ms or 250s"):
        parse_config(text.replace("interval: 1s", 'interval: "250"'), env={})


@pytest.mark.parametrize(
    ("address", "meant"),
    [
        (30001, ("input", 0)),
        (39999, ("input", 9998)),
        (40001, ("holding", 0)),
        (49999, ("holding", 9998)),
        (300001, ("input", 0)),
        (365536, ("input", 65535)),
        (400001, ("holding", 0)),
        (465536, ("holding", 65535)),
        (30000, None),
        (40000, None),
        (50000, None),
        (365537, None),
        (465537, None),
    ],
)
def test_register_numbers(address: int, meant: tuple[str, int] | None) -> None:
    assert register_number(address) == meant


def test_address_hint_names_the_table_only_when_it_differs() -> None:
    assert address_hint(40001, "holding") == (
        "40001 looks like a register number: holding register 1 is address 0; write address: 0"
    )
    assert address_hint(40001, "input") is not None
    assert "write table: holding, address: 0" in (address_hint(40001, "input") or "")


def test_type_hints_only_suggest_an_allowed_type() -> None:
    assert type_hint("float", "bool, float32") == "did you mean float32?"
    assert type_hint("float", "bool, int16") is None
    assert type_hint("flaot", "float32") is None

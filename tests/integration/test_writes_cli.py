"""``edge-agent write`` and ``edge-agent audit`` as a person runs them: a real
subprocess talking to a real local socket that the test serves with a recording gate
(the gate's own rules are tested with the gate). One test per exit code."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import socket
import stat
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.writes.audit import AuditLog, audit_directory
from edge_agent.writes.cli import Unreachable, ask
from edge_agent.writes.local_socket import LocalCommandSocket, socket_path
from edge_agent.writes.model import Outcome
from tests.writes_socket_support import RecordingGate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "edge_agent")
#: Bound on a short command (import, load, print) on a loaded 2-core CI machine.
QUICK_TIMEOUT = 60.0

PLANT = """\
plant: {{name: line-1}}
state_dir: {state_dir}
{extra}
devices:
  - name: press-1
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1}}
    poll_groups:
      - interval: 1s
        tags:
          - name: setpoint
            address: 10
            scale: 0.1
            write: {{channels: [cli, mqtt], min: 0, max: 10}}
          - {{name: pressure, address: 20}}
          - {{name: mode, address: 30, write: {{channels: [mqtt], min: 0, max: 3}}}}
"""


def _plant(tmp_path: Path, extra: str = "") -> Path:
    plant = tmp_path / "plant.yaml"
    plant.write_text(PLANT.format(state_dir=tmp_path / "state", extra=extra))
    return plant


async def _cli(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("COMMAND_KEY", None)
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), QUICK_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[RecordingGate]:
    gate = RecordingGate()
    serving = LocalCommandSocket(socket_path(tmp_path / "state"), gate)
    await serving.start()
    try:
        yield gate
    finally:
        if gate.hold is not None:
            gate.hold.set()
        await serving.close()


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


async def test_applied_exits_0_and_says_what_happened(tmp_path: Path, agent: RecordingGate) -> None:
    code, out, err = await _cli("write", "-c", str(_plant(tmp_path)), "press-1", "setpoint", "6.5")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "applied: press-1 setpoint = 6.5"
    assert lines[1] == "  before -> read back: 7.0 -> 6.5"
    assert lines[2] == "  sent: holding 10 <- 0x0041 (function 6)"
    assert lines[3].startswith("  timing: ")
    assert "100.0 ms to confirm" in lines[3]
    [request] = agent.requests
    assert (request.channel, request.identity, request.value, request.dry_run) == (
        "cli",
        _user(),
        6.5,
        False,
    )
    assert request.id.startswith("cli-")


async def test_json_prints_the_result_document(tmp_path: Path, agent: RecordingGate) -> None:
    code, out, _ = await _cli(
        "write", "-c", str(_plant(tmp_path)), "press-1", "setpoint", "6.5", "--json"
    )
    assert code == 0
    document = json.loads(out)
    assert document["id"] == agent.requests[0].id
    assert (document["outcome"], document["read_back"]) == ("applied", 6.5)


async def test_dry_run_exits_0_and_asks_for_a_dry_run(tmp_path: Path, agent: RecordingGate) -> None:
    agent.outcome = Outcome.DRY_RUN
    code, out, _ = await _cli(
        "write", "-c", str(_plant(tmp_path)), "press-1", "setpoint", "6.5", "--dry-run"
    )
    assert code == 0
    assert out.startswith("dry run, nothing written: press-1 setpoint = 6.5\n")
    assert "  would send: holding 10" in out
    assert agent.requests[0].dry_run is True


async def test_refused_exits_1_with_the_reason(tmp_path: Path, agent: RecordingGate) -> None:
    agent.outcome, agent.reason = Outcome.REFUSED, "12.0 is above the tag's max 10"
    code, out, _ = await _cli("write", "-c", str(_plant(tmp_path)), "press-1", "setpoint", "12")
    assert code == 1
    assert out.startswith("refused: press-1 setpoint = 12: 12.0 is above the tag's max 10\n")


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        (Outcome.FAILED, "FAILED"),
        (Outcome.MISMATCH, "MISMATCH"),
        (Outcome.NOT_APPLIED, "NOT APPLIED"),
        (Outcome.UNKNOWN, "UNKNOWN OUTCOME"),
    ],
)
async def test_not_applied_outcomes_exit_2(
    tmp_path: Path, agent: RecordingGate, outcome: Outcome, words: str
) -> None:
    agent.outcome, agent.reason = outcome, "the device said so"
    code, out, _ = await _cli("write", "-c", str(_plant(tmp_path)), "press-1", "setpoint", "6.5")
    assert code == 2
    assert out.startswith(f"{words}: press-1 setpoint = 6.5: the device said so\n")


async def test_no_answer_in_time_exits_2_as_unknown(tmp_path: Path, agent: RecordingGate) -> None:
    agent.hold = asyncio.Event()  # the command never finishes
    code, out, err = await _cli(
        "write", "-c", str(_plant(tmp_path)), "press-1", "setpoint", "6.5", "--timeout", "0.5"
    )
    assert (code, out) == (2, "")
    assert "no answer within 0.5 s: the outcome is unknown" in err
    assert f"see `edge-agent audit -c {tmp_path / 'plant.yaml'}` (id cli-" in err


async def test_values_are_json_where_they_are_json_else_text(
    tmp_path: Path, agent: RecordingGate
) -> None:
    plant = str(_plant(tmp_path))
    for value in ("true", "run", '"6.5"', "7"):
        code, _, _ = await _cli("write", "-c", plant, "press-1", "setpoint", value)
        assert code == 0
    assert [r.value for r in agent.requests] == [True, "run", "6.5", 7]
    assert isinstance(agent.requests[3].value, int)


async def test_what_the_plant_file_forbids_is_said_early_and_still_asked(
    tmp_path: Path, agent: RecordingGate
) -> None:
    agent.outcome, agent.reason = Outcome.REFUSED, "not writable over cli"
    plant = str(_plant(tmp_path))
    notes = {
        "mode": "tag mode of device press-1 may be written over mqtt only, not cli",
        "pressure": "tag pressure of device press-1 is not writable (no write: block)",
        "nothing": "device press-1 has no tag 'nothing'",
    }
    for tag, note in notes.items():
        code, _, err = await _cli("write", "-c", plant, "press-1", tag, "1")
        assert code == 1
        assert err == f"note: {note}, says {plant}; asking the agent anyway\n"
    assert [r.tag for r in agent.requests] == ["mode", "pressure", "nothing"]


async def test_no_agent_exits_3_and_says_where_it_looked(tmp_path: Path) -> None:
    code, out, err = await _cli("write", "-c", str(_plant(tmp_path)), "press-1", "setpoint", "6.5")
    assert (code, out) == (3, "")
    assert f"no agent socket at {tmp_path / 'state' / 'commands.sock'}" in err
    assert "is the agent running for this plant file?" in err
    assert "nothing sent" in err


async def test_a_plant_without_the_socket_says_so(tmp_path: Path) -> None:
    plant = _plant(tmp_path, "commands: {socket: false}")
    code, _, err = await _cli("write", "-c", str(plant), "press-1", "setpoint", "6.5")
    assert code == 3
    assert "(this plant file has commands: {socket: false})" in err


async def test_a_socket_nobody_listens_on_exits_3(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(tmp_path / "state" / "commands.sock"))
    left.close()
    code, _, err = await _cli("write", "-c", str(_plant(tmp_path)), "press-1", "setpoint", "6.5")
    assert code == 3
    assert "nobody listens on" in err
    assert "the agent is not running" in err


async def test_a_broken_plant_file_exits_3_with_its_problems(tmp_path: Path) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text("plant: {name: line-1}\ndevices: []\n")
    code, _, err = await _cli("write", "-c", str(plant), "press-1", "setpoint", "6.5")
    assert code == 3
    assert "plant.yaml:2: devices" in err
    assert err.rstrip().endswith("edge-agent write: nothing sent")


async def test_the_command_key_is_not_needed_to_write(tmp_path: Path, agent: RecordingGate) -> None:
    """The key lives in the service's environment; the person at the shell lacks it."""
    plant = _plant(tmp_path, "commands: {signatures: required, key: '${COMMAND_KEY}'}")
    code, _, err = await _cli("write", "-c", str(plant), "press-1", "setpoint", "6.5")
    assert (code, err) == (0, "")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_permission_denied_says_who_may_use_the_socket() -> None:
    """As root the file's mode does not stop us: a forked child becomes nobody."""
    directory = Path(tempfile.mkdtemp(prefix="edge-socket-"))
    try:
        os.chmod(directory, 0o755)
        path = directory / "commands.sock"
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listening.bind(str(path))
        os.chmod(path, 0o600)
        listening.listen(1)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through the pipe
            os.close(read_end)
            message = "connected"
            try:
                nobody = pwd.getpwnam("nobody")
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                ask(path, {"id": "x"}, 5.0)
            except Unreachable as exc:
                message = str(exc)
            except BaseException as exc:  # noqa: BLE001 - the child must report anything and exit
                message = f"{type(exc).__name__}: {exc}"
            os.write(write_end, message.encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read().decode()
        os.waitpid(child, 0)
        listening.close()
        assert message == (
            f"permission denied on {path}: run as the agent's user (or root), or as a member "
            "of commands.socket_group"
        )
    finally:
        for child_path in directory.iterdir():
            child_path.unlink()
        directory.rmdir()


async def test_audit_prints_a_table_and_json_lines(tmp_path: Path) -> None:
    plant = _plant(tmp_path)
    log = AuditLog(audit_directory(tmp_path / "state"), 10_000_000, 3)
    log.append(
        {
            "time": "2026-12-05T06:00:00.000Z",
            "id": "cli-5",
            "channel": "cli",
            "identity": "operator",
            "device": "press-1",
            "tag": "setpoint",
            "requested": 6.5,
            "outcome": "applied",
            "reason": "",
        }
    )
    log.close()
    code, out, err = await _cli("audit", "-c", str(plant))
    assert (code, err) == (0, "")
    head, row = out.splitlines()
    assert head.split() == [
        *("time", "id", "channel", "identity", "device", "tag", "requested", "outcome", "reason")
    ]
    assert row == (
        "2026-12-05T06:00:00.000Z  cli-5  cli      operator  press-1  setpoint  6.5        applied"
    )
    assert head.index("outcome") == row.index("applied")  # columns line up
    code, out, _ = await _cli("audit", "-c", str(plant), "--json")
    assert code == 0
    assert json.loads(out)["identity"] == "operator"

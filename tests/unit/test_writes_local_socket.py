"""The local command socket, with a real Unix socket in tmp_path and a recording gate:
the kernel's word for who is asking, the file's permissions, a crash's leftover
replaced and a live agent's never, and every malformed line answered."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import random
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from edge_agent.writes import local_socket
from edge_agent.writes.audit import AuditLog
from edge_agent.writes.local_socket import (
    ID_PATTERN,
    LocalCommandSocket,
    LocalSocketError,
    parse_request,
    socket_path,
)
from edge_agent.writes.policy import PlantWrites
from edge_agent.writes.service import WriteService
from tests.gate_support import Devices, plant
from tests.writes_socket_support import FailingGate, RecordingGate, ask, request_line


@pytest.fixture
def gate() -> RecordingGate:
    return RecordingGate()


@pytest.fixture
async def server(tmp_path: Path, gate: RecordingGate) -> AsyncIterator[LocalCommandSocket]:
    serving = LocalCommandSocket(socket_path(tmp_path / "state"), gate)
    await serving.start()
    try:
        yield serving
    finally:
        await serving.close()


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


async def test_a_command_goes_to_the_gate_as_the_peer_s_unix_user(
    server: LocalCommandSocket, gate: RecordingGate
) -> None:
    answer = await ask(server.path, request_line(value=6.5, dry_run=True))
    [request] = gate.requests
    assert request.channel == "cli"
    assert request.identity == _user()  # from SO_PEERCRED, not from anything the client said
    assert (request.id, request.device, request.tag, request.value, request.dry_run) == (
        "cmd-1",
        "press-1",
        "setpoint",
        6.5,
        True,
    )
    assert request.received_at_ns > 0
    assert answer["id"] == "cmd-1"
    assert answer["outcome"] == "applied"
    assert answer["accepted"] is True
    assert (answer["requested"], answer["before"], answer["read_back"]) == (6.5, 7.0, 6.5)
    timing = answer["timing_ms"]
    assert isinstance(timing, dict)
    assert timing["to_confirm"] == 100.0
    assert str(answer["confirmed_at"]).endswith("Z")


async def test_an_identity_in_the_request_is_refused_not_believed(
    server: LocalCommandSocket, gate: RecordingGate
) -> None:
    answer = await ask(server.path, request_line(identity="operator-with-rights"))
    assert answer["outcome"] == "refused"
    assert "unknown field(s): identity" in str(answer["reason"])
    [request] = gate.requests  # to the gate as a refusal, so audited, as the kernel's user
    assert (request.identity, request.tag, request.value) == (_user(), None, None)


async def test_the_socket_file_is_for_its_owner_only(server: LocalCommandSocket) -> None:
    mode = server.path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert [p.name for p in server.path.parent.iterdir()] == ["commands.sock"]  # no temp left


async def test_with_a_socket_group_it_is_0660_and_that_group_s(
    tmp_path: Path, gate: RecordingGate
) -> None:
    other = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())
    serving = LocalCommandSocket(tmp_path / "commands.sock", gate, group=other.gr_name)
    await serving.start()
    try:
        info = serving.path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == other.gr_gid
    finally:
        await serving.close()


async def test_a_socket_group_that_does_not_exist_is_refused_in_words(
    tmp_path: Path, gate: RecordingGate
) -> None:
    serving = LocalCommandSocket(tmp_path / "commands.sock", gate, group="no-such-group-18")
    with capture_logs() as logs, pytest.raises(LocalSocketError, match="no such Unix group"):
        await serving.start()
    assert logs[0]["event"] == "local command socket not started"
    assert "'no-such-group-18'" in logs[0]["reason"]
    assert not serving.path.exists()
    await serving.close()  # nothing started: nothing to do


async def test_a_socket_a_crash_left_is_replaced(tmp_path: Path, gate: RecordingGate) -> None:
    path = tmp_path / "commands.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))
    crashed.close()  # the file stays, nobody listens
    serving = LocalCommandSocket(path, gate)
    with capture_logs() as logs:
        await serving.start()
    try:
        assert any("removed the one a crash left" in entry["event"] for entry in logs)
        assert (await ask(path, request_line()))["outcome"] == "applied"
    finally:
        await serving.close()


async def test_a_live_agent_s_socket_is_left_alone(
    server: LocalCommandSocket, gate: RecordingGate
) -> None:
    second = LocalCommandSocket(server.path, RecordingGate())
    with pytest.raises(LocalSocketError, match="another agent is listening"):
        await second.start()
    assert (await ask(server.path, request_line()))["outcome"] == "applied"
    assert len(gate.requests) == 1


async def test_a_file_that_is_not_a_socket_is_not_removed(
    tmp_path: Path, gate: RecordingGate
) -> None:
    path = tmp_path / "commands.sock"
    path.write_text("someone's notes")
    with pytest.raises(LocalSocketError, match="is not a socket"):
        await LocalCommandSocket(path, gate).start()
    assert path.read_text() == "someone's notes"


async def test_a_path_too_long_for_a_socket_is_said(tmp_path: Path, gate: RecordingGate) -> None:
    path = tmp_path / ("d" * 100) / "commands.sock"
    with pytest.raises(LocalSocketError, match="too long for a Unix socket"):
        await LocalCommandSocket(path, gate).start()


async def test_close_removes_its_own_file_only(tmp_path: Path, gate: RecordingGate) -> None:
    path = tmp_path / "commands.sock"
    first = LocalCommandSocket(path, gate)
    await first.start()
    await first.close()
    assert not path.exists()
    second = LocalCommandSocket(path, gate)
    await second.start()
    path.unlink()
    path.write_text("a newer agent's")  # the path is no longer ours
    await second.close()
    assert path.read_text() == "a newer agent's"


BAD_LINES = [
    (b"not json\n", "not a JSON request line"),
    (b"[1, 2]\n", "must be a JSON object"),
    (b"\xff\xfe\n", "not a JSON request line"),
    (b'{"device": "press-1", "tag": "t", "value": 1}\n', "id: 1-128 characters"),
    (request_line(id="has space"), "id: 1-128 characters"),
    (request_line(id="x" * 129), "id: 1-128 characters"),
    (request_line(id=7), "id: 1-128 characters"),
    (request_line(device=""), "device: a device name expected"),
    (request_line(tag=None), "tag: a tag name expected"),
    (request_line(value=None), "value: a number, true/false or a text expected"),
    (request_line(value=[1, 2]), "value: a number, true/false or a text expected"),
    (request_line(value={"raw": 1}), "value: a number, true/false or a text expected"),
    (b'{"id": "c", "device": "d", "tag": "t", "value": NaN}\n', "NaN is not a value"),
    (request_line(dry_run="yes"), "dry_run: true or false expected"),
    (request_line(method="ack"), "unknown field(s): method"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
async def test_a_malformed_request_is_answered_refused(
    server: LocalCommandSocket, gate: RecordingGate, line: bytes, reason: str
) -> None:
    answer = await ask(server.path, line)
    assert answer["outcome"] == "refused"
    assert answer["accepted"] is False
    assert reason in str(answer["reason"])
    # The gate has it, as a refusal (so the audit log has it), never as a write.
    [request] = gate.requests
    assert reason in request.refusal
    assert (request.channel, request.identity) == ("cli", _user())
    assert (request.tag, request.method, request.value) == (None, None, None)
    assert request.id == (answer["id"] or "")


async def test_an_empty_line_is_answered_here_it_is_no_command(
    server: LocalCommandSocket, gate: RecordingGate
) -> None:
    answer = await ask(server.path, b"\n")
    assert answer["outcome"] == "refused"
    assert "empty request" in str(answer["reason"])
    assert gate.requests == []


async def test_a_request_over_16_kib_is_refused(
    server: LocalCommandSocket, gate: RecordingGate
) -> None:
    answer = await ask(server.path, request_line(value="x" * 17_000))
    assert answer["outcome"] == "refused"
    assert "longer than 16384 bytes" in str(answer["reason"])
    [request] = gate.requests  # audited as a refusal, with who sent it
    assert (request.id, request.identity, request.tag) == ("", _user(), None)


async def test_a_request_without_its_newline_is_taken_at_end_of_input(
    server: LocalCommandSocket, gate: RecordingGate
) -> None:
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(request_line().rstrip(b"\n"))
    writer.write_eof()
    answer = json.loads(await reader.readline())
    writer.close()
    await writer.wait_closed()
    assert answer["outcome"] == "applied"
    assert len(gate.requests) == 1


async def test_a_silent_client_is_answered_and_dropped(
    server: LocalCommandSocket, gate: RecordingGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_socket, "CLIENT_TIMEOUT_S", 0.2)
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    answer = json.loads(await reader.readline())
    assert await reader.read() == b""  # and the connection is closed
    writer.close()
    await writer.wait_closed()
    assert "no request line within 0.2 s" in answer["reason"]
    assert gate.requests == []


async def test_a_gate_that_raises_is_an_unknown_outcome_not_a_crash(tmp_path: Path) -> None:
    serving = LocalCommandSocket(tmp_path / "commands.sock", FailingGate())
    await serving.start()
    try:
        with capture_logs() as logs:
            answer = await ask(serving.path, request_line())
        assert answer["outcome"] == "unknown"
        assert answer["id"] == "cmd-1"
        assert "internal error in the agent (RuntimeError)" in str(answer["reason"])
        assert logs[0]["event"] == "write gate failed"
        # the socket still serves
        answer = await ask(serving.path, request_line(id="cmd-2"))
        assert answer["id"] == "cmd-2"
    finally:
        await serving.close()


async def test_a_client_that_leaves_does_not_stop_the_command(
    server: LocalCommandSocket, gate: RecordingGate
) -> None:
    gate.hold = asyncio.Event()
    _reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(request_line())
    await writer.drain()
    while not gate.requests:
        await asyncio.sleep(0.01)
    writer.close()
    await writer.wait_closed()
    gate.hold.set()
    while gate.finished == 0:
        await asyncio.sleep(0.01)
    assert gate.finished == 1


async def test_close_lets_a_command_in_flight_finish(tmp_path: Path, gate: RecordingGate) -> None:
    serving = LocalCommandSocket(tmp_path / "commands.sock", gate)
    await serving.start()
    gate.hold = asyncio.Event()
    answer = asyncio.create_task(ask(serving.path, request_line()))
    while not gate.requests:
        await asyncio.sleep(0.01)
    closing = asyncio.create_task(serving.close(grace=30))
    await asyncio.sleep(0.05)
    assert not closing.done()
    assert not serving.path.exists()  # no new commands meanwhile
    gate.hold.set()
    assert (await answer)["outcome"] == "applied"
    await closing


async def test_close_cancels_a_command_past_the_grace(tmp_path: Path, gate: RecordingGate) -> None:
    serving = LocalCommandSocket(tmp_path / "commands.sock", gate)
    await serving.start()
    gate.hold = asyncio.Event()  # never set
    reader, writer = await asyncio.open_unix_connection(str(serving.path))
    writer.write(request_line())
    await writer.drain()
    while not gate.requests:
        await asyncio.sleep(0.01)
    with capture_logs() as logs:
        await serving.close(grace=0.05)
    assert [entry["event"] for entry in logs] == ["local command cancelled at shutdown"]
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()


async def test_more_connections_than_allowed_are_told_busy(
    server: LocalCommandSocket, gate: RecordingGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_socket, "MAX_CONNECTIONS", 1)
    gate.hold = asyncio.Event()
    first = asyncio.create_task(ask(server.path, request_line()))
    while not gate.requests:
        await asyncio.sleep(0.01)
    busy = await ask(server.path, request_line(id="cmd-2"))
    assert busy["outcome"] == "refused"
    assert "busy" in str(busy["reason"])
    gate.hold.set()
    assert (await first)["outcome"] == "applied"
    assert [r.id for r in gate.requests] == ["cmd-1"]


async def test_random_bytes_are_answered_and_the_socket_keeps_serving(
    server: LocalCommandSocket, gate: RecordingGate
) -> None:
    rng = random.Random(18)
    for _ in range(60):
        size = rng.choice([1, 5, 40, 300, 5000])
        junk = bytes(rng.randrange(256) for _ in range(size)).replace(b"\n", b"") + b"\n"
        answer = await ask(server.path, junk)
        assert answer["outcome"] == "refused"
    assert (await ask(server.path, request_line()))["outcome"] == "applied"


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=10) | _json,
        "device": st.text(max_size=10) | _json,
        "tag": st.text(max_size=10) | _json,
        "value": _json,
        "dry_run": _json,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | _objects.map(lambda o: json.dumps(o).encode()))
def test_parse_request_never_raises(line: bytes) -> None:
    parsed = parse_request(line, "root", 1)
    assert parsed.channel == "cli"
    assert parsed.identity == "root"
    if parsed.refusal:  # for the gate to refuse and audit: never a write to any gate
        assert (parsed.tag, parsed.method, parsed.value) == (None, None, None)
        assert parsed.id == "" or ID_PATTERN.match(parsed.id)
    else:
        assert isinstance(parsed.value, bool | int | float | str)
        assert parsed.device
        assert parsed.tag


# --------------------------------------------------------------------------- with the gate


@pytest.fixture
async def audited(tmp_path: Path) -> AsyncIterator[tuple[LocalCommandSocket, AuditLog]]:
    """The socket in front of the real gate and a real audit log (no device is running:
    every command ends refused, which is all these tests need)."""
    audit = AuditLog(tmp_path / "audit", 10**6, 3)
    service = WriteService(PlantWrites.of(plant()), Devices(), audit)
    service.start()
    serving = LocalCommandSocket(socket_path(tmp_path / "state"), service)
    await serving.start()
    try:
        yield serving, audit
    finally:
        await serving.close()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # a null value (a script's variable that was empty)
        (
            {"id": "cli-7", "device": "compressor-1", "tag": "pressure_setpoint", "value": None},
            "value: a number",
        ),
        # a typo'd field: "dryrun" (the person meant a dry run)
        (
            {
                "id": "cli-8",
                "device": "compressor-1",
                "tag": "pressure_setpoint",
                "value": 6.5,
                "dryrun": True,
            },
            "unknown field(s): dryrun",
        ),
    ],
)
async def test_a_refused_local_request_is_audited(
    audited: tuple[LocalCommandSocket, AuditLog], body: dict[str, object], reason: str
) -> None:
    """ "Every command, accepted or refused, is appended to an audit log": the socket
    once answered a request it could not read itself, and the audit log never heard of
    it, although the sender (SO_PEERCRED) and the id were known (review of issue 18)."""
    server, audit = audited
    answer = await ask(server.path, json.dumps(body).encode() + b"\n")
    assert answer["outcome"] == "refused"
    [record] = audit.read()
    assert record["id"] == body["id"]
    assert (record["channel"], record["identity"], record["device"]) == (
        "cli",
        _user(),
        "compressor-1",
    )
    assert reason in str(record["reason"])
    assert record["reason"] == answer["reason"]


async def test_a_line_that_is_not_json_is_audited_without_an_id(
    audited: tuple[LocalCommandSocket, AuditLog],
) -> None:
    server, audit = audited
    answer = await ask(server.path, b"write the pressure to 6.5 please\n")
    assert answer["outcome"] == "refused"
    [record] = audit.read()
    assert (record["id"], record["channel"], record["identity"]) == (None, "cli", _user())
    assert str(record["reason"]).startswith("not a JSON request line")

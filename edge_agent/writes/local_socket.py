"""The agent's local command socket: how ``edge-agent write`` reaches the running agent.

``<state_dir>/commands.sock``, a Unix stream socket only its owner may use (mode 0600;
0660 and the group ``commands.socket_group`` when set): the file's permissions are the
access control, and the peer's Unix user (``SO_PEERCRED``, told by the kernel, not by
the client) is the command's identity in the audit log.

One connection carries one command: a JSON line ``{"id", "device", "tag", "value",
"dry_run"}`` (at most 16 KiB), answered with one JSON line, the result document. The
command goes to the :class:`~edge_agent.writes.model.WriteGate` like any other channel's
(channel ``cli``); nothing here decides whether it may be written. A request that
cannot be read (not JSON, a null value, an unknown field, longer than 16 KiB) goes to
the gate too, as a refusal (``WriteRequest.refusal``, with the id where one could be
read), so it is audited like every command; the answer is the gate's (outcome
``refused`` with the reason), never a crash. Only a connection that sends no request
at all (silent, empty) or finds the socket busy is answered here, unaudited: there is
no command to record.

The socket is bound in a private temporary directory, given its mode (and group),
and only then renamed into place, so there is no moment at which it is open to
others. A socket file left by a crash is removed; one another live agent listens on
is left alone and this one refuses to start.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import re
import socket
import stat
import struct
import tempfile
import time
from pathlib import Path

import structlog

from edge_agent.writes.model import Outcome, WriteGate, WriteRequest, WriteResult

log = structlog.get_logger("edge_agent.writes.socket")

SOCKET_NAME = "commands.sock"
#: The longest request line, newline included (as for MQTT commands).
MAX_REQUEST_BYTES = 16 * 1024
#: A client that does not send its request (or read its answer) within this is dropped.
CLIENT_TIMEOUT_S = 5.0
#: Connections served at once; more are answered "busy" (one person runs the CLI).
MAX_CONNECTIONS = 16
#: Command ids: as on MQTT (docs/WRITES.md).
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")
_FIELDS = frozenset({"id", "device", "tag", "value", "dry_run"})
_PEERCRED = struct.Struct("3i")  # pid, uid, gid (struct ucred)


class LocalSocketError(Exception):
    """The socket cannot be started; the message says why, in words."""


def socket_path(state_dir: Path) -> Path:
    """Where a plant's agent listens: ``<state_dir>/commands.sock``."""
    return state_dir / SOCKET_NAME


class LocalCommandSocket:
    """The server side. ``await start()`` listens; ``await close()`` stops listening,
    lets commands in flight finish (up to ``grace`` seconds) and removes the file.
    ``gate`` may be replaced while it runs (a reload hands over a new gate)."""

    def __init__(self, path: Path, gate: WriteGate, *, group: str = "") -> None:
        self.path = path
        self.gate = gate
        self.group = group
        self._server: asyncio.Server | None = None
        self._inode: int | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; raises :class:`LocalSocketError` (and logs it) when it cannot."""
        try:
            sock = self._bind()
        except LocalSocketError as exc:
            log.error("local command socket not started", reason=str(exc))
            raise
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=MAX_REQUEST_BYTES
        )
        log.info("local command socket listening", path=str(self.path), group=self.group or None)

    def _bind(self) -> socket.socket:
        gid = _group_id(self.group)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.path)
        if len(os.fsencode(self.path)) > 100:  # sun_path holds 108 bytes, the temp name more
            raise LocalSocketError(
                f"{self.path}: the path is too long for a Unix socket (at most 100 bytes): "
                "give the plant a shorter state_dir"
            )
        private = Path(tempfile.mkdtemp(prefix=".cmd", dir=self.path.parent))  # mode 0700
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            staged = private / "s"
            sock.bind(os.fspath(staged))
            if gid is not None:
                try:
                    os.chown(staged, -1, gid)
                except PermissionError:
                    raise LocalSocketError(
                        f"commands.socket_group {self.group!r}: the agent's user is not a "
                        "member of it, so it cannot hand the socket to that group"
                    ) from None
            os.chmod(staged, 0o600 if gid is None else 0o660)
            os.rename(staged, self.path)
            sock.listen(MAX_CONNECTIONS)
        except BaseException:
            sock.close()
            raise
        finally:
            _remove_tree(private)
        self._inode = self.path.stat().st_ino
        if gid is not None and not self.path.parent.stat().st_mode & stat.S_IXGRP:
            log.warning(
                "local command socket: the group cannot reach it",
                group=self.group,
                reason=f"{self.path.parent} is not searchable by its group (mode "
                f"{stat.S_IMODE(self.path.parent.stat().st_mode):04o}); under systemd "
                "set StateDirectoryMode=0750 and the directory's group",
            )
        sock.setblocking(False)
        return sock

    async def close(self, grace: float = 10.0) -> None:
        """Stop listening and remove the socket file (if it is still ours); commands in
        flight finish within ``grace`` seconds, are cancelled after."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        try:
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()
        except FileNotFoundError:
            pass
        if self._handlers:
            _done, pending = await asyncio.wait(set(self._handlers), timeout=grace)
            for task in pending:
                log.warning("local command cancelled at shutdown", task=task.get_name())
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - a stream handler always runs in a task
            raise RuntimeError("the local socket's handler runs outside a task")
        self._handlers.add(task)
        try:
            if len(self._handlers) > MAX_CONNECTIONS:
                answer = refusal(None, "the agent is busy with other local commands; try again")
            else:
                answer = await self._answer(reader, writer)
            writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
            async with asyncio.timeout(CLIENT_TIMEOUT_S):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # the client went away or does not read: nothing to tell it
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> dict[str, object]:
        received_at_ns = time.time_ns()
        identity = peer_user(writer.get_extra_info("socket"))
        try:
            async with asyncio.timeout(CLIENT_TIMEOUT_S):
                line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = exc.partial  # the client closed its side after the request
        except asyncio.LimitOverrunError:
            parsed = unreadable(
                None, f"request longer than {MAX_REQUEST_BYTES} bytes", identity, received_at_ns
            )
            return await self._submit(parsed)
        except TimeoutError:
            return refusal(None, f"no request line within {CLIENT_TIMEOUT_S:g} s")
        if not line.strip():
            return refusal(None, "empty request")
        return await self._submit(parse_request(line, identity, received_at_ns))

    async def _submit(self, parsed: WriteRequest) -> dict[str, object]:
        try:
            result = await self.gate.submit(parsed)
        except Exception as exc:
            log.exception("write gate failed", id=parsed.id, device=parsed.device)
            if parsed.refusal:  # nothing could have been written for it
                return refusal(parsed.id, parsed.refusal, parsed)
            # The gate must not raise; if it does, the person is told the truth: nobody
            # knows whether the write went out.
            return refusal(
                parsed.id,
                f"internal error in the agent ({type(exc).__name__}): the write may or may "
                "not have been sent; see `edge-agent audit` and the device",
                parsed,
                Outcome.UNKNOWN,
            )
        return result_document(result)


def _group_id(name: str) -> int | None:
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise LocalSocketError(
            f"commands.socket_group {name!r}: no such Unix group on this machine "
            "(create it, or remove socket_group)"
        ) from None


def _remove_stale(path: Path) -> None:
    """Remove a socket file nobody listens on (a crash left it); refuse when another
    agent is listening, or the file is not a socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise LocalSocketError(f"{path} exists and is not a socket: move it away")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        path.unlink(missing_ok=True)
        log.info("local command socket: removed the one a crash left", path=str(path))
        return
    except OSError as exc:
        raise LocalSocketError(
            f"{path}: cannot tell whether an agent listens there: {exc}"
        ) from exc
    finally:
        probe.close()
    raise LocalSocketError(
        f"another agent is listening on {path}: is this plant already running? "
        "(two agents must not share a state_dir)"
    )


def _remove_tree(directory: Path) -> None:
    for child in directory.iterdir():
        child.unlink()
    directory.rmdir()


def peer_user(sock: socket.socket | None) -> str:
    """The Unix user at the other end (the kernel's word, ``SO_PEERCRED``): the name,
    or ``uid N`` without a passwd entry."""
    if sock is None:
        return ""
    _pid, uid, _gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def parse_request(line: bytes, identity: str, received_at_ns: int) -> WriteRequest:
    """The request on ``line``; one that cannot be read is a refusal for the gate (its
    ``refusal`` says why; the id and device where they could be read), so it is audited."""
    try:
        data = json.loads(line, parse_constant=_no_constant)
    except ValueError as exc:  # not UTF-8 (UnicodeDecodeError) or not JSON
        return unreadable(None, f"not a JSON request line: {exc}", identity, received_at_ns)
    if not isinstance(data, dict):
        return unreadable(None, "the request must be a JSON object", identity, received_at_ns)
    command = data.get("id")
    device = data.get("device")
    named = device if isinstance(device, str) and 0 < len(device) <= 128 else ""
    if not isinstance(command, str) or not ID_PATTERN.match(command):
        reason = "id: 1-128 characters of A-Z a-z 0-9 _ . : - expected"
        return unreadable(None, reason, identity, received_at_ns, named)
    problem = _problem(data)
    if problem:
        return unreadable(command, problem, identity, received_at_ns, named)
    return WriteRequest(
        id=command,
        channel="cli",
        identity=identity,
        device=data["device"],
        tag=data["tag"],
        value=data["value"],
        dry_run=data.get("dry_run", False),
        received_at_ns=received_at_ns,
    )


def _problem(data: dict[str, object]) -> str:
    """What is wrong with a request object that has an id ("" when nothing)."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        return f"unknown field(s): {', '.join(map(str, unknown))}"
    device, tag, value = data.get("device"), data.get("tag"), data.get("value")
    if not isinstance(device, str) or not device:
        return "device: a device name expected"
    if not isinstance(tag, str) or not tag:
        return "tag: a tag name expected"
    if not isinstance(value, bool | int | float | str):
        return "value: a number, true/false or a text expected"
    if not isinstance(data.get("dry_run", False), bool):
        return "dry_run: true or false expected"
    return ""


def unreadable(
    command: str | None, reason: str, identity: str, received_at_ns: int, device: str = ""
) -> WriteRequest:
    """A request the socket could not read, for the gate to refuse and audit: neither
    tag nor method set, so it is malformed to any gate whatever it makes of ``refusal``."""
    return WriteRequest(
        id=command or "",
        channel="cli",
        identity=identity,
        device=device,
        received_at_ns=received_at_ns,
        refusal=reason,
    )


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a value")


def refusal(
    command: str | None,
    reason: str,
    request: WriteRequest | None = None,
    outcome: Outcome = Outcome.REFUSED,
) -> dict[str, object]:
    """The answer to a request that never reached the gate (no request was sent, the
    socket was busy) or that the gate failed on."""
    now = time.time_ns()
    return result_document(
        WriteResult(
            id=command or "",
            device=request.device if request else "",
            target=(request.tag or "") if request else "",
            outcome=outcome,
            reason=reason,
            requested=request.value if request else None,
            received_at_ns=request.received_at_ns if request else now,
            finished_at_ns=now,
        )
    )


def result_document(result: WriteResult) -> dict[str, object]:
    """The result document of docs/WRITES.md (what MQTT publishes on ``cmd/result``)."""
    return result.to_json()

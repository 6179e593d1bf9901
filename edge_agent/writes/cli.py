"""``edge-agent write`` and ``edge-agent audit``.

``write`` never talks to a device: it hands one command to the running agent through
its local socket (:mod:`edge_agent.writes.local_socket`) and prints what the agent
answered. The agent checks the policy, writes, reads back and audits; the plant file is
read here only to find the socket and to say early when the command cannot pass.
Exit codes: 0 applied or dry run, 1 refused, 2 failed, mismatch, not applied or
unknown (also a usage error, as argparse has it), 3 the agent could not be asked.

``audit`` reads the audit files directly (no agent needed): a table, or the records
as JSON lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config models load with the command that needs them
    from edge_agent.config import PlantConfig
    from edge_agent.config.writes import WritePolicy

EXIT_APPLIED = 0
EXIT_REFUSED = 1
EXIT_NOT_APPLIED = 2
EXIT_UNREACHABLE = 3
#: Outcomes (docs/WRITES.md) -> exit code; anything else is an unknown outcome.
EXIT_BY_OUTCOME = {"applied": 0, "dry_run": 0, "refused": 1}
#: The longest answer read (a result document is about 1 KiB).
MAX_ANSWER_BYTES = 1024 * 1024
#: ``state_dir: ${EDGE_AGENT_STATE:-./state}``, as the bundled plant files have it.
_FROM_ENVIRONMENT = re.compile(r"^state_dir:\s*[\"']?\$\{EDGE_AGENT_STATE\b", re.M)


def add_write_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    write = commands.add_parser(
        "write",
        help="write a tag through the running agent (its policy, read-back and audit)",
        description="Ask the running agent to write VALUE to DEVICE's TAG. The agent checks "
        "the tag's write: policy, writes once, reads back and audits; this command only "
        "carries the request over the agent's local socket (state_dir/commands.sock).",
    )
    write.add_argument("-c", "--config", required=True, help="plant YAML file")
    write.add_argument("device", metavar="DEVICE")
    write.add_argument("tag", metavar="TAG")
    write.add_argument(
        "value", metavar="VALUE", help='6.5, true, run (a label), or "text" (JSON where it is)'
    )
    write.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    write.add_argument("--json", action="store_true", help="print the agent's result document")
    write.add_argument(
        "--timeout", type=float, default=90.0, metavar="S", help="wait at most S s (90)"
    )
    write.set_defaults(handler=cmd_write)

    audit = commands.add_parser(
        "audit", help="print the audit log of write commands (state_dir/audit)"
    )
    audit.add_argument("-c", "--config", required=True, help="plant YAML file")
    audit.add_argument(
        "--since",
        type=since_ns,
        metavar="WHEN",
        help="1h, 30m, 2d, or a time: 2026-12-05T06:00 (local) or with an offset/Z",
    )
    audit.add_argument("--device", metavar="D", help="only this device's commands")
    audit.add_argument("--json", action="store_true", help="the records as JSON lines")
    audit.set_defaults(handler=cmd_audit)


def _load(path: str) -> PlantConfig | None:
    """The plant file, its problems printed (None then). Only state_dir and the tags are
    read here: a variable this shell lacks gets a stand-in (the command key, passwords
    kept in the service's environment file)."""
    from edge_agent.config.loader import load_report
    from edge_agent.config.stand_ins import stand_in_environment
    from edge_agent.errors import ConfigError

    try:
        return load_report(path, stand_in_environment(path)).plant
    except ConfigError as exc:
        for line in exc.report:
            print(line, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
    return None


# --------------------------------------------------------------------------- write


def parse_value(text: str) -> bool | int | float | str:
    """``6.5`` -> 6.5, ``true`` -> True, ``"6.5"`` -> "6.5", ``run`` -> "run": JSON where
    the text is a JSON number, bool or string, else the text as it is."""
    try:
        value = json.loads(text, parse_constant=_not_a_value)
    except ValueError:
        return text
    return value if isinstance(value, bool | int | float | str) else text


def _not_a_value(name: str) -> object:
    raise ValueError(name)  # NaN, Infinity: text, which no numeric tag takes


def policy_note(plant: PlantConfig, device: str, tag: str) -> str | None:
    """Why the plant file says the command cannot pass (the agent decides anyway: it may
    run an older or newer version of the file), or None."""
    found = next((d for d in plant.devices if d.name == device), None)
    if found is None:
        names = ", ".join(d.name for d in plant.devices)
        return f"{device!r} is not a device of this plant file (devices: {names})"
    policy: WritePolicy | None = None
    for group in found.poll_groups:
        for candidate in group.tags:
            if candidate.name == tag:
                if candidate.write is None:
                    return f"tag {tag} of device {device} is not writable (no write: block)"
                policy = candidate.write
    if policy is None:
        return f"device {device} has no tag {tag!r}"
    if "cli" not in policy.channels:
        allowed = ", ".join(policy.channels)
        return f"tag {tag} of device {device} may be written over {allowed} only, not cli"
    return None


def cmd_write(args: argparse.Namespace) -> int:
    from edge_agent.writes.local_socket import socket_path

    plant = _load(args.config)
    if plant is None:
        print("edge-agent write: nothing sent", file=sys.stderr)
        return EXIT_UNREACHABLE
    note = policy_note(plant, args.device, args.tag)
    if note is not None:
        print(f"note: {note}, says {args.config}; asking the agent anyway", file=sys.stderr)
    command = "cli-" + uuid.uuid4().hex
    request = {
        "id": command,
        "device": args.device,
        "tag": args.tag,
        "value": parse_value(args.value),
        "dry_run": args.dry_run,
    }
    path = socket_path(plant.state_dir)
    try:
        answer = ask(path, request, args.timeout)
    except Unreachable as exc:
        print(f"edge-agent write: nothing sent: {exc}", file=sys.stderr)
        if not plant.commands.socket:
            print("(this plant file has commands: {socket: false})", file=sys.stderr)
        return EXIT_UNREACHABLE
    except NoAnswer as exc:
        print(
            f"edge-agent write: {exc}: the outcome is unknown (the command may have been "
            f"carried out); see `edge-agent audit -c {args.config}` (id {command})",
            file=sys.stderr,
        )
        return EXIT_NOT_APPLIED
    if answer.get("id") not in (command, None):
        print(f"edge-agent write: the agent answered another command: {answer}", file=sys.stderr)
        return EXIT_NOT_APPLIED
    print(json.dumps(answer, ensure_ascii=False) if args.json else render_result(answer))
    return EXIT_BY_OUTCOME.get(str(answer.get("outcome")), EXIT_NOT_APPLIED)


class Unreachable(Exception):
    """The agent's socket could not be reached: nothing was sent."""


class NoAnswer(Exception):
    """The request went out and no readable answer came back."""


def ask(path: Path, request: Mapping[str, object], timeout: float) -> dict[str, object]:
    """Send ``request`` on the socket at ``path``; the agent's answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(os.fspath(path))
        except FileNotFoundError:
            raise Unreachable(
                f"no agent socket at {path}: is the agent running for this plant file?"
            ) from None
        except PermissionError:
            raise Unreachable(
                f"permission denied on {path}: run as the agent's user (or root), or as a "
                "member of commands.socket_group"
            ) from None
        except ConnectionRefusedError:
            raise Unreachable(
                f"nobody listens on {path}: the agent is not running (a crash left the socket)"
            ) from None
        except OSError as exc:
            raise Unreachable(f"cannot connect to {path}: {exc}") from None
        try:
            sock.sendall(json.dumps(request, ensure_ascii=False).encode() + b"\n")
            data = _read_line(sock)
        except TimeoutError:
            raise NoAnswer(f"no answer within {timeout:g} s") from None
        except OSError as exc:
            raise NoAnswer(f"the connection broke: {exc}") from None
    finally:
        sock.close()
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("outcome"), str):
        raise NoAnswer("the agent closed the connection without a readable answer")
    return answer


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < MAX_ANSWER_BYTES:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


_OUTCOME_WORDS = {
    "applied": "applied",
    "dry_run": "dry run, nothing written",
    "refused": "refused",
    "mismatch": "MISMATCH",
    "failed": "FAILED",
    "not_applied": "NOT APPLIED",
    "unknown": "UNKNOWN OUTCOME",
}


def render_result(answer: Mapping[str, object]) -> str:
    """The agent's result document in words, one fact a line."""
    outcome = str(answer.get("outcome"))
    target = answer.get("tag") or answer.get("method") or ""
    head = (
        f"{_OUTCOME_WORDS.get(outcome, outcome)}: {answer.get('device') or ''} {target} "
        f"= {show(answer.get('requested'))}"
    )
    lines = [head + (f": {answer['reason']}" if answer.get("reason") else "")]
    before, read_back = answer.get("before"), answer.get("read_back")
    if before is not None or read_back is not None:
        lines.append(f"  before -> read back: {show(before)} -> {show(read_back)}")
    if answer.get("sent"):
        lines.append(f"  {'would send' if outcome == 'dry_run' else 'sent'}: {answer['sent']}")
    timing = answer.get("timing_ms")
    if isinstance(timing, Mapping):
        parts = [
            f"{timing[key]} ms {words}"
            for key, words in (
                ("to_write", "to write"),
                ("to_confirm", "to confirm"),
                ("total", "in all"),
            )
            if isinstance(timing.get(key), int | float)
        ]
        if parts:
            lines.append("  timing: " + ", ".join(parts))
    if outcome == "unknown":
        lines.append("  nobody knows whether the device took it: check the device")
    return "\n".join(lines)


def show(value: object) -> str:
    """A value for people: texts as they are, the rest as JSON, nothing as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- audit


def since_ns(text: str, now_ns: int | None = None) -> int:
    """``1h`` (that long ago), or a time: RFC 3339 with an offset, or without one in the
    machine's local time; ns since the epoch."""
    from edge_agent.config import parse_duration
    from edge_agent.writes.audit import datetime_ns

    now_ns = time.time_ns() if now_ns is None else now_ns
    try:  # the plant file's durations: 90s, 30m, 1h, 2d
        seconds = parse_duration(text.strip())
    except ValueError:
        seconds = None
    if isinstance(seconds, float):
        return now_ns - int(seconds * 1e9)
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (1h, 30m, 2d) nor a time (2026-12-05T06:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the machine's local time
    return datetime_ns(moment)


_COLUMNS = (
    *("time", "id", "channel", "identity", "device", "tag", "requested", "outcome", "reason"),
)
#: The table's id column is cut to this many characters (a console id is 40 long); the
#: start is enough to find a command, ``--json`` has it whole.
ID_WIDTH = 16


def cmd_audit(args: argparse.Namespace) -> int:
    from edge_agent.writes.audit import AuditLog, audit_directory

    plant = _load(args.config)
    if plant is None:
        return 2
    files = plant.commands.audit
    log = AuditLog(audit_directory(plant.state_dir), files.max_bytes, files.keep)
    if not log.directory.is_dir():
        text = Path(args.config).read_text(errors="replace")  # read just now: it is there
        print(no_log_words(log.directory, plant.state_dir, text), file=sys.stderr)
        return 1
    try:
        records = [
            r for r in log.read(args.since) if args.device is None or r.get("device") == args.device
        ]
    except PermissionError:
        print(
            f"edge-agent audit: cannot read {log.directory}: permission denied (the audit "
            "log is the agent's own: run as the agent's user or root)",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"edge-agent audit: cannot read {log.directory}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
    elif records:
        print(render_table(records))
    else:
        print(
            f"no write commands recorded{' in that time' if args.since else ''} ({log.directory})"
        )
    for skipped in log.skipped:
        print(skipped, file=sys.stderr)
    return 0


def no_log_words(directory: Path, state_dir: Path, config_text: str) -> str:
    """Why there may be no audit directory where this command looked: the agent keeps
    it elsewhere (a relative state_dir is the agent's working directory's, or the file
    takes it from the agent's environment), or it has not handled a command yet (the
    log is made by the first)."""
    words = [
        f"edge-agent audit: no audit log at {directory.absolute()} (no such directory).",
        "Either the agent has not handled a write command yet, or it keeps its state elsewhere:",
    ]
    if not state_dir.is_absolute():
        words.append(
            f"  - state_dir {_shown_relative(state_dir)} is relative: it is taken from the "
            "directory the agent was started in (run this command there, or give state_dir "
            "as an absolute path)"
        )
    if _FROM_ENVIRONMENT.search(config_text):
        here = os.environ.get("EDGE_AGENT_STATE")
        words.append(
            "  - the plant file takes state_dir from EDGE_AGENT_STATE, "
            + (f"here {here}" if here else "which is not set in this shell")
            + ": set it as the agent has it (the systemd unit: /var/lib/edge-agent; "
            "`edge-agent demo`: the temporary directory its banner prints)"
        )
    return "\n".join(words)


def _shown_relative(path: Path) -> str:
    """``./state`` as written (Path drops the ``./``)."""
    text = str(path)
    return text if text.startswith(".") else f"./{text}"


def render_table(records: Iterable[Mapping[str, object]]) -> str:
    """One command a line, the reason last (unpadded: it may be long)."""
    rows = [_COLUMNS] + [tuple(_cell(record, column) for column in _COLUMNS) for record in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in rows
    )


def _cell(record: Mapping[str, object], column: str) -> str:
    if column == "tag" and not record.get("tag") and record.get("method"):
        return f"{record['method']}()"
    value = record.get(column)
    text = ("" if value is None else show(value)).replace("\n", " ")
    if column == "id" and len(text) > ID_WIDTH:
        return text[: ID_WIDTH - 1] + "…"
    return text

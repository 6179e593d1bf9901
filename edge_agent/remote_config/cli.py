"""``edge-agent config keygen|sign|push|status``: the operator's side of remote configuration.

- ``keygen --out FILE``: a new Ed25519 key; the private half to FILE (0600, never
  overwritten), the public half printed as the line for ``remote_config.public_keys``.
- ``sign --key FILE|--key-env VAR --version N plant.yaml > doc.json``: the document for
  that file, exactly as its bytes are. Refuses a file that fails ``edge-agent check``
  (secrets the gateway's environment holds are stood in for, as ``status`` does), that
  writes a secret in clear (the agent's own rule, :mod:`.secrets`) or has no
  ``remote_config:`` (the agent would refuse it: it would lock itself out).
- ``push --broker HOST:PORT --plant NAME doc.json``: publish on ``edge/NAME/config/set``
  (QoS 1, never retained) and wait for the agent's report about this very document
  on ``config/state``. Exit 0
  applied, 1 refused (its problems printed), 2 no answer in time.
- ``status --broker HOST:PORT --plant NAME``: the retained report. Exit 0, or 2 if none.

Private keys come from a file or an environment variable, never from the command line
(``ps`` shows arguments to every user), and are never printed. The broker's password,
if any, likewise comes from an environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.sinks.mqtt_bridge import MqttConnection

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_NO_ANSWER = 2
EXIT_USAGE = 2


def add_config_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser(
        "config", help="signed remote configuration: keygen, sign, push, status, audit"
    )
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")

    keygen = actions.add_parser("keygen", help="make a signing key (private file + public line)")
    keygen.add_argument("--out", required=True, metavar="FILE", help="private key file (new)")
    keygen.set_defaults(handler=cmd_keygen)

    sign = actions.add_parser("sign", help="sign a plant file: the document on stdout")
    _key_arguments(sign)
    sign.add_argument("--version", type=int, required=True, metavar="N", help="from 1, rising")
    sign.add_argument("plant_file", metavar="PLANT_FILE")
    sign.set_defaults(handler=cmd_sign)

    push = actions.add_parser("push", help="publish a signed document, wait for the answer")
    _broker_arguments(push)
    push.add_argument("document", metavar="DOCUMENT", help="what `config sign` wrote")
    push.add_argument("--timeout", type=float, default=60.0, metavar="S", help="(60)")
    push.set_defaults(handler=cmd_push)

    status = actions.add_parser("status", help="the agent's last config report (retained)")
    _broker_arguments(status)
    status.add_argument("--timeout", type=float, default=5.0, metavar="S", help="(5)")
    status.set_defaults(handler=cmd_status)

    audit = actions.add_parser(
        "audit", help="this gateway's record of config documents (state_dir/audit/config.jsonl)"
    )
    audit.add_argument("-c", "--config", required=True, help="plant YAML file")
    audit.add_argument("--json", action="store_true", help="the records as JSON lines")
    audit.set_defaults(handler=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    """``config audit``: the records of :mod:`edge_agent.remote_config.audit`, one line each."""
    from edge_agent.remote_config.audit import config_audit_log
    from edge_agent.writes.cli import _load

    plant = _load(args.config)
    if plant is None:
        return 2
    files = plant.commands.audit
    log = config_audit_log(plant.state_dir, files.max_bytes, files.keep)
    try:
        records = list(log.read())
    except OSError as exc:
        print(f"edge-agent config audit: cannot read {log.directory}: {exc}", file=sys.stderr)
        return 1
    for record in records:
        if args.json:
            print(json.dumps(record, ensure_ascii=False))
            continue
        problems = record.get("problems")
        first = problems[0] if isinstance(problems, list) and problems else ""
        why = record.get("reason") or first
        who = record.get("key_id") or ""
        print(
            f"{record.get('time', '?')}  {record.get('event', '?'):<15} "
            f"v{record.get('version')}  {who}  {why}".rstrip()
        )
    if not records:
        print(f"no config documents recorded ({log.path})")
    for skipped in log.skipped:
        print(skipped, file=sys.stderr)
    return 0


def _key_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--key", metavar="FILE", help="private key file (from `config keygen`)")
    where.add_argument("--key-env", metavar="VAR", help="environment variable holding the key")


def _broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", required=True, metavar="HOST:PORT")
    parser.add_argument("--plant", required=True, metavar="NAME")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--ca-file", metavar="FILE", help="CA certificates (implies --tls)")
    parser.add_argument("--cert-file", metavar="FILE", help="client certificate (implies --tls)")
    parser.add_argument("--key-file", metavar="FILE", help="client certificate's key file")
    parser.add_argument(
        "--insecure", action="store_true", help="with TLS: do not verify the broker"
    )
    parser.add_argument("--username", default="")
    parser.add_argument("--password-env", metavar="VAR", help="environment variable: password")


# ---------------------------------------------------------------------- keygen, sign


def cmd_keygen(args: argparse.Namespace) -> int:
    from edge_agent.remote_config.keys import (
        key_id,
        new_private_key,
        public_line,
        write_private_key,
    )

    key = new_private_key()
    try:
        write_private_key(Path(args.out), key)
    except FileExistsError:
        print(f"{args.out}: exists; a key is never overwritten", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{args.out}: cannot write the key: {exc}", file=sys.stderr)
        return EXIT_USAGE
    public = key.public_key()
    print(f"# {key_id(public)}: private key in {args.out} (mode 0600); for remote_config:")
    print(f'    public_keys: ["{public_line(public)}"]')
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from edge_agent.config.loader import load_report
    from edge_agent.config.stand_ins import stand_in_environment
    from edge_agent.errors import ConfigError
    from edge_agent.remote_config.document import sign_document
    from edge_agent.remote_config.keys import KeyProblem, load_private_key
    from edge_agent.remote_config.secrets import secrets_in_clear

    if args.version < 1:
        print("--version: a whole number from 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        key = load_private_key(path=args.key, env_name=args.key_env)
    except KeyProblem as exc:
        print(f"edge-agent config sign: {exc}", file=sys.stderr)
        return EXIT_USAGE
    path = Path(args.plant_file)
    try:
        data = path.read_bytes()
        report = load_report(path, stand_in_environment(path))
    except ConfigError as exc:
        for line in exc.report:
            print(line, file=sys.stderr)
        print(f"{path}: fails edge-agent check; not signed", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{path}: cannot read it: {exc}", file=sys.stderr)
        return EXIT_USAGE
    clear = secrets_in_clear(data.decode("utf-8", errors="replace"), str(path))
    if clear:
        for line in clear:
            print(line, file=sys.stderr)
        print(
            f"{path}: writes a secret in clear (the document passes through the broker; "
            "the agent would refuse it); not signed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if report.plant.remote_config is None:
        print(
            f"{path}: no remote_config: section; the agent would refuse it (it could take no "
            "further document); not signed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    document = sign_document(data, plant=report.plant.plant.name, version=args.version, key=key)
    sys.stdout.buffer.write(document)
    return EXIT_OK


# ---------------------------------------------------------------------- push, status


def cmd_push(args: argparse.Namespace) -> int:
    from edge_agent.remote_config.document import DocumentError, parse_document

    try:
        payload = Path(args.document).read_bytes()
        document = parse_document(payload)
    except OSError as exc:
        print(f"{args.document}: cannot read it: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DocumentError as exc:
        print(f"{args.document}: not a config document: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if document.plant != args.plant:
        print(
            f"{args.document} is signed for plant {document.plant!r}, not {args.plant!r}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        answer = asyncio.run(_push(args, payload, document.digest))
    except _Unreachable as exc:
        print(f"edge-agent config push: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    if answer is None:
        print(
            f"no answer from plant {args.plant} within {args.timeout:g} s (is the agent "
            "running, and connected to this broker?)",
            file=sys.stderr,
        )
        return EXIT_NO_ANSWER
    _print_state(answer)
    return EXIT_OK if answer.get("status") == "applied" else EXIT_REFUSED


def cmd_status(args: argparse.Namespace) -> int:
    try:
        answer = asyncio.run(_retained(args))
    except _Unreachable as exc:
        print(f"edge-agent config status: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    if answer is None:
        print(f"no config report from plant {args.plant} on this broker", file=sys.stderr)
        return EXIT_NO_ANSWER
    _print_state(answer)
    return EXIT_OK


class _Unreachable(Exception):
    pass


async def _push(
    args: argparse.Namespace, payload: bytes, digest: str | None
) -> dict[str, Any] | None:
    """Subscribe to the reports first, then publish (never retained: a retained
    document would come back at every connection); the answer is the first report that
    names this very document (``document``: the SHA-256 of its signature, set only
    once the agent verified the signature and the file), or refuses these very bytes
    (``envelope``: a key the agent does not know, another plant), and is not the
    retained one (that is an older answer). A forged copy carrying this document's
    signature is answered with neither."""
    from edge_agent.remote_config.state import set_topic, state_topic

    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    envelope = hashlib.sha256(payload).hexdigest()

    def on_message(topic: str, data: bytes, retained: bool) -> None:
        report = _json(data)
        if report is not None and not retained:
            answers.put_nowait(report)

    connection = await _connect(args, on_message)
    try:
        await connection.subscribe([(state_topic(args.plant), 1)], within=10.0)
        await connection.publish(
            [(set_topic(args.plant), payload)], qos=1, retain=False, idle_timeout=10.0
        )
        try:
            async with asyncio.timeout(args.timeout):
                while True:
                    report = await answers.get()
                    if (digest is not None and report.get("document") == digest) or (
                        report.get("status") == "refused" and report.get("envelope") == envelope
                    ):
                        return report
        except TimeoutError:
            return None
    except _mqtt_error() as exc:
        raise _Unreachable(str(exc)) from None
    finally:
        await _close(connection)


async def _retained(args: argparse.Namespace) -> dict[str, Any] | None:
    from edge_agent.remote_config.state import state_topic

    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_message(topic: str, data: bytes, retained: bool) -> None:
        report = _json(data)
        if report is not None:
            answers.put_nowait(report)

    connection = await _connect(args, on_message)
    try:
        await connection.subscribe([(state_topic(args.plant), 1)], within=10.0)
        try:
            async with asyncio.timeout(args.timeout):
                return await answers.get()
        except TimeoutError:
            return None
    except _mqtt_error() as exc:
        raise _Unreachable(str(exc)) from None
    finally:
        await _close(connection)


def _mqtt_error() -> type[Exception]:
    from edge_agent.sinks.mqtt_bridge import MqttError

    return MqttError


async def _connect(args: argparse.Namespace, on_message: Any) -> MqttConnection:
    from edge_agent.config import MqttTls
    from edge_agent.errors import ConfigError
    from edge_agent.sinks.brokers import tls_context
    from edge_agent.sinks.mqtt_bridge import MqttConnection, MqttError

    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit():
        raise _Unreachable(f"--broker {args.broker!r}: write HOST:PORT")
    context = None
    if args.tls or args.ca_file or args.cert_file:
        tls = MqttTls(
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
            verify=not args.insecure,
        )
        try:
            context = tls_context(tls, "--tls")
        except ConfigError as exc:
            raise _Unreachable("; ".join(exc.problems)) from None
    password = os.environ.get(args.password_env, "") if args.password_env else ""
    connection = MqttConnection(
        host=host.strip("[]"),
        port=int(port),
        client_id=f"edge-agent-config-{uuid.uuid4().hex[:8]}",
        username=args.username,
        password=password,
        ssl_context=context,
        on_message=on_message,
    )
    try:
        await connection.connect()
    except MqttError as exc:
        await connection.aclose()
        raise _Unreachable(str(exc)) from None
    return connection


async def _close(connection: MqttConnection) -> None:
    if connection.connected:
        await connection.disconnect()
    await connection.aclose()


def _json(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _print_state(report: dict[str, Any]) -> None:
    """One line, then the problems one per line (file:line first)."""
    status = report.get("status", "?")
    version = report.get("version")
    running = report.get("running_version")
    line = f"{status}: version {version}; running version {running}"
    if report.get("reason"):
        line += f"; {report['reason']}"
    print(line)
    for problem in report.get("problems") or []:
        if problem != report.get("reason"):
            print(f"  {problem}")
    later = report.get("takes_effect_at_next_start") or []
    if later:
        print(f"  takes effect at the next start: {', '.join(later)}")
    if report.get("devices_not_back"):
        print(f"  devices not back: {', '.join(report['devices_not_back'])}")

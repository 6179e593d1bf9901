"""``edge-agent`` command line: run (--once), check, schema, simulate, demo, status, outbox,
browse, certs, read, probe, templates, report, write, audit."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge_agent import __version__
from edge_agent.config import PlantConfig
from edge_agent.config.loader import ConfigReport, load_report
from edge_agent.errors import ConfigError
from edge_agent.remote_config.cli import add_config_commands
from edge_agent.writes.cli import add_write_commands

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _load_or_report(path: str, env: Mapping[str, str] | None = None) -> PlantConfig | None:
    report = _report(path, env)
    return None if report is None else report.plant


def _report(path: str, env: Mapping[str, str] | None = None) -> ConfigReport | None:
    """The plant file at ``path`` with its warnings printed (stderr), or None after
    printing its problems and warnings in line order."""
    try:
        report = load_report(path, env)
    except ConfigError as exc:
        for line in exc.report:
            print(line, file=sys.stderr)
        count = len(exc.problems)
        warnings = len(exc.report) - count
        also = f" and {_plural(warnings, 'warning')}" if warnings > 0 else ""
        # A YAML syntax error stops the reading there: the rest is checked once it is fixed.
        syntax = any(": YAML syntax: " in problem for problem in exc.problems)
        after = "; fix the YAML syntax first, the rest is checked after it" if syntax else ""
        print(
            f"{path}: {_plural(count, 'problem')}{also}; nothing started{after}",
            file=sys.stderr,
        )
        return None
    for line in report.warnings:
        print(line, file=sys.stderr)
    return report


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def cmd_run(args: argparse.Namespace) -> int:
    if args.once:
        return cmd_once(args)
    if args.json:
        print("edge-agent run: --json goes with --once", file=sys.stderr)
        return EXIT_CONFIG
    from edge_agent.logs import configure_from_config  # lazy: keep `schema`/`check` light
    from edge_agent.service.agent import Agent
    from edge_agent.service.supervisor import serve

    config = _load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG

    def on_config(plant: PlantConfig) -> None:
        # Logs on stdout (journald keeps it); stderr keeps the one-line fatal errors.
        configure_from_config(plant, args.log_level, stream=sys.stdout)

    on_config(config)

    async def main() -> None:
        # SIGTERM/SIGINT stop, SIGHUP reloads args.config; systemd notification if asked.
        await serve(
            Agent(config), config_path=args.config, duration=args.duration, on_config=on_config
        )

    from edge_agent.outbox import OutboxError

    try:
        asyncio.run(main())
    except* OutboxError as group:
        # The outbox cannot be opened (permissions, a full disk): nothing was collected.
        # It arrives inside the supervisor's task group, hence except*.
        for exc in _leaves(group):
            print(f"edge-agent: {exc}", file=sys.stderr)
        failed = True
    else:
        failed = False
    return EXIT_FAILURE if failed else EXIT_OK


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions in ``group`` and its nested groups."""
    return [
        leaf
        for exc in group.exceptions
        for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    ]


def cmd_once(args: argparse.Namespace) -> int:
    """``run --once``: every poll group read once, printed; exit 1 when a tag is not good."""
    from edge_agent.logs import configure_logging
    from edge_agent.oneshot import read_once, render_text, to_json

    config = _load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG
    configure_logging(args.log_level or "warning")  # stderr: stdout is the result
    readings = asyncio.run(read_once(config))
    print(to_json(readings) if args.json else render_text(readings))
    return EXIT_OK if all(r.good for r in readings) else EXIT_FAILURE


def cmd_status(args: argparse.Namespace) -> int:
    from edge_agent.config.stand_ins import stand_in_environment
    from edge_agent.service.status_view import (
        StatusUnavailable,
        fetch_status,
        render_status,
        sink_backlog,
        status_url,
    )

    config = _load_or_report(args.config, stand_in_environment(args.config))
    if config is None:
        return EXIT_CONFIG
    try:
        document = fetch_status(args.url or status_url(config))
    except StatusUnavailable as exc:
        print(f"edge-agent status: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(render_status(document, sink_backlog(config)))
    return EXIT_OK


def _add_once_and_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="show the running agent's status (its /status)")
    status.add_argument("-c", "--config", required=True, help="plant YAML file")
    status.add_argument("--json", action="store_true", help="the status document as is")
    status.add_argument(
        "--url", metavar="http://HOST:PORT", help="ask this health listener instead"
    )
    status.set_defaults(handler=cmd_status)


def cmd_check(args: argparse.Namespace) -> int:
    """Problems: exit 2. Warnings (stderr, ``file:line: path: warning: ...``) leave
    the exit code 0: they may be meant."""
    from edge_agent.state_dir import state_dir_problem
    from edge_agent.summary import render_summary

    report = _report(args.config)
    if report is None:
        return EXIT_CONFIG
    warnings = len(report.warnings)
    problem = state_dir_problem(report.plant.state_dir)
    if problem is not None:
        line = report.line_of(("state_dir",))
        print(f"{args.config}:{line}: state_dir: warning: {problem}", file=sys.stderr)
        warnings += 1
    print(render_summary(report.plant, args.config, warnings))
    return EXIT_OK


def plant_schema() -> dict[str, object]:
    """The JSON Schema of the plant file (committed as configs/schema.json)."""
    schema = PlantConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edge-agent plant configuration"
    return schema


def render_schema() -> str:
    return json.dumps(plant_schema(), indent=2, sort_keys=True) + "\n"


def cmd_schema(_args: argparse.Namespace) -> int:
    sys.stdout.write(render_schema())
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.cli import run_simulate

    return run_simulate(Path(args.config), duration=args.duration)


def cmd_outbox_status(args: argparse.Namespace) -> int:
    import sqlite3

    from edge_agent.outbox.status import read_status, render_status, status_json
    from edge_agent.service.parts import outbox_path

    config = _load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG
    path = outbox_path(config)
    if not path.exists():
        print(f"no outbox at {path} yet: the agent has not run with sinks")
        return EXIT_OK
    try:
        status = read_status(path)
    except sqlite3.Error as exc:
        print(f"{path}: not readable as an outbox: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(status_json(status) if args.json else render_status(status))
    return EXIT_OK


def cmd_certs(args: argparse.Namespace) -> int:
    from drivers.opcua.cli import run_certs  # lazy: asyncua only for OPC UA commands

    return run_certs(args.config, args.action, getattr(args, "name", None))


def cmd_browse(args: argparse.Namespace) -> int:
    from drivers.opcua.cli import load_plant, run_browse

    config = None
    if args.config:
        config = load_plant(args.config)  # the state directory, not the plant's secrets
        if config is None:
            return EXIT_CONFIG
    return run_browse(
        args.url,
        config=config,
        depth=args.depth,
        security=args.security,
        user=args.user,
        password_env=args.password_env,
        as_yaml=args.yaml,
        match=args.match,
        start=args.start,
        include_server=args.all,
    )


def _add_opcua_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    browse = commands.add_parser("browse", help="print an OPC UA server's address space")
    browse.add_argument("url", help="opc.tcp://HOST:PORT")
    browse.add_argument("--depth", type=int, default=3, help="levels below the start (3)")
    browse.add_argument(
        "--security",
        default="None",
        metavar="POLICY/MODE",
        help="None (default), or e.g. Basic256Sha256/SignAndEncrypt (needs -c)",
    )
    browse.add_argument("--user", default="", help="user name; password from --password-env")
    browse.add_argument("--password-env", default="OPCUA_PASSWORD", metavar="VAR")
    browse.add_argument("--yaml", action="store_true", help="print the variables as a tag list")
    browse.add_argument(
        "--match", default="", metavar="GLOB", help="keep variables whose path matches"
    )
    browse.add_argument("--start", default="", metavar="NODE", help="start node (default Objects)")
    browse.add_argument("--all", action="store_true", help="include the Server object")
    browse.add_argument("-c", "--config", help="plant file: its certificates and trust list")
    browse.set_defaults(handler=cmd_browse)

    certs = commands.add_parser("certs", help="OPC UA server certificates: list, trust")
    actions = certs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="trusted and rejected server certificates")
    listing.add_argument("-c", "--config", required=True, help="plant YAML file")
    trust = actions.add_parser("trust", help="move a rejected certificate to trusted")
    trust.add_argument("name", help="NAME from `certs list` (or a thumbprint prefix)")
    trust.add_argument("-c", "--config", required=True, help="plant YAML file")
    certs.set_defaults(handler=cmd_certs)


def _add_commissioning_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """``read`` and ``probe``: find a register's address, type and byte order at the device."""

    def cmd_read(args: argparse.Namespace) -> int:
        if args.target.lower().startswith("opc.tcp://"):
            from drivers.opcua.cli import load_plant
            from drivers.opcua.read import run_read_node  # lazy: asyncua only for OPC UA

            if not args.node:
                print(
                    "error: an OPC UA read needs --node ID (see `edge-agent browse URL`)",
                    file=sys.stderr,
                )
                return EXIT_CONFIG
            config = None
            if args.config:
                config = load_plant(args.config)
                if config is None:
                    return EXIT_CONFIG
            return run_read_node(
                args.target,
                args.node,
                config=config,
                security=args.security,
                user=args.user,
                password_env=args.password_env,
                out=sys.stdout,
            )
        from drivers.modbus.commands import read_command

        if args.node:
            print(
                "error: --node is for OPC UA (opc.tcp://...); Modbus takes --address",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        return read_command(
            args.target,
            unit=args.unit,
            table=args.table,
            address=args.address,
            count=args.count,
            type_=args.type,
            byte_order=args.byte_order,
            scale=args.scale,
            timeout=args.timeout,
        )

    def cmd_probe(args: argparse.Namespace) -> int:
        from drivers.modbus.commands import probe_command

        return probe_command(
            args.target,
            unit=args.unit,
            table=args.table,
            address=args.address,
            count=args.count,
            expect=args.expect,
            scan_units=args.scan_units,
            scan_registers=args.scan_registers,
            first=args.first,
            last=args.last,
            block=args.block,
            pause=args.pause,
            budget=args.budget,
            timeout=args.timeout,
            scales=args.scales,
            top=args.top,
        )

    def _add_modbus_arguments(
        command: argparse.ArgumentParser, *, address_help: str, opcua: bool
    ) -> None:
        command.add_argument(
            "target",
            help="tcp://HOST:PORT or rtu:///dev/ttyUSB0?baud=9600&parity=E"
            + (" (or opc.tcp://HOST:PORT with --node)" if opcua else ""),
        )
        command.add_argument("--unit", type=int, default=1, help="Modbus unit id (1)")
        command.add_argument(
            "--table", default="holding", help="holding (default), input, coil or discrete"
        )
        command.add_argument("--address", type=int, help=address_help)
        command.add_argument("--timeout", type=float, default=1.0, help="seconds per request (1)")

    read = commands.add_parser(
        "read", help="one request: raw registers and the value as every type and byte order"
    )
    _add_modbus_arguments(read, address_help="0-based protocol address", opcua=True)
    read.add_argument("--count", type=int, help="registers (or bits) to read (2; 1 for bits)")
    read.add_argument("--type", help="decode as this type only (e.g. float32, uint16)")
    read.add_argument("--byte-order", help="with --type: ABCD (default), CDAB, BADC or DCBA")
    read.add_argument("--scale", type=float, default=1.0, help="with --type: value = raw x scale")
    read.add_argument("--node", help="OPC UA: NodeId, nsu=URI;s=..., or /browse/path")
    read.add_argument("--security", default="None", metavar="POLICY/MODE", help="OPC UA")
    read.add_argument("--user", default="", help="OPC UA user; password from --password-env")
    read.add_argument("--password-env", default="OPCUA_PASSWORD", metavar="VAR")
    read.add_argument("-c", "--config", help="OPC UA: plant file with certificates and trust list")
    read.set_defaults(handler=cmd_read)

    probe = commands.add_parser(
        "probe", help="rank decodings in an expected range; scan unit ids or a register map"
    )
    _add_modbus_arguments(
        probe, address_help="0-based address (--expect; start of scans)", opcua=False
    )
    mode = probe.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--expect", metavar="LOW..HIGH", help="e.g. 220..240 (negative: --expect=-5..5)"
    )
    mode.add_argument(
        "--scan-units", metavar="A..B", help="find the unit ids that answer, e.g. 1..247"
    )
    mode.add_argument("--scan-registers", action="store_true", help="map readable ranges and holes")
    probe.add_argument("--count", type=int, default=4, help="--expect: registers to read (4)")
    probe.add_argument("--scales", default="1,0.1,0.01,0.001", help="--expect: scales to try")
    probe.add_argument("--top", type=int, default=8, help="--expect: decodings to list (8)")
    probe.add_argument("--from", dest="first", type=int, metavar="A", help="scan start (0)")
    probe.add_argument("--to", dest="last", type=int, metavar="B", help="scan end (A+999)")
    probe.add_argument("--block", type=int, default=100, help="scan: addresses per request (100)")
    probe.add_argument(
        "--pause", type=float, default=0.1, help="scan: seconds between requests (0.1)"
    )
    probe.add_argument("--budget", type=float, default=300.0, help="scan: seconds at most (300)")
    probe.set_defaults(handler=cmd_probe)


def _add_template_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from edge_agent.template_commands import add_template_commands

    add_template_commands(commands)


def _add_report_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from edge_agent.report_command import add_report_command

    add_report_command(commands, _load_or_report)


def _add_demo_and_console_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    from edge_agent.console.commands import add_demo_and_console_commands

    add_demo_and_console_commands(commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description=(
            "Industrial edge data collection: Modbus and OPC UA in, MQTT and InfluxDB out, "
            "nothing lost."
        ),
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the agent for one plant file")
    run.add_argument("-c", "--config", required=True, help="plant YAML file")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    run.add_argument("--once", action="store_true", help="read every device once, print, exit")
    run.add_argument("--json", action="store_true", help="with --once: machine-readable output")
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check", help="validate a plant file and print its read plan")
    check.add_argument("-c", "--config", required=True, help="plant YAML file")
    check.set_defaults(handler=cmd_check)

    schema = commands.add_parser("schema", help="print the JSON Schema of the plant file")
    schema.set_defaults(handler=cmd_schema)

    simulate = commands.add_parser("simulate", help="serve simulated equipment on loopback")
    simulate.add_argument(
        "-c",
        "--config",
        required=True,
        metavar="PROFILE",
        help="a simulator profile YAML, a shipped profile's name (demo-plant), or "
        "template:NAME[:PORT] for a device template's registers on 127.0.0.1 (port 0 or "
        "none: any free port)",
    )
    simulate.add_argument("--duration", type=float, help="stop after this many seconds")
    simulate.set_defaults(handler=cmd_simulate)

    _add_demo_and_console_commands(commands)

    outbox = commands.add_parser("outbox", help="inspect the durable outbox of a plant")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    outbox_status = outbox_commands.add_parser(
        "status", help="backlog per sink: batches, bytes, oldest timestamp"
    )
    outbox_status.add_argument("-c", "--config", required=True, help="plant YAML file")
    outbox_status.add_argument("--json", action="store_true", help="machine-readable output")
    outbox_status.set_defaults(handler=cmd_outbox_status)
    _add_opcua_commands(commands)
    _add_commissioning_commands(commands)
    _add_template_commands(commands)
    _add_once_and_status(commands)
    _add_report_command(commands)
    add_write_commands(commands)
    add_config_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())

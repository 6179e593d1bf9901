"""``edge-agent read`` and ``probe``: commissioning a device from the command line
(apart from :mod:`edge_agent.cli` so that each stays a readable size)."""

from __future__ import annotations

import argparse
import sys

EXIT_CONFIG = 2  # the plant file is invalid, as for every command (edge_agent.cli)


def add_commissioning_commands(
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

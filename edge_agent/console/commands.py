"""``edge-agent demo`` and ``edge-agent console hash-password``: the commands around the console.

``demo`` runs the bundled simulators and the agent with the console on loopback;
``console hash-password`` makes the argon2 hash a console user's ``password_hash`` holds
(the password is read without echo, or from stdin for scripts, and never printed).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from edge_agent.bundled import DEMO_CONSOLE_PORT

Commands = argparse._SubParsersAction  # noqa: SLF001 - argparse has no public name for it
MIN_PASSWORD = 8


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.demo import run_demo

    return run_demo(
        config_path=Path(args.config) if args.config else None,
        mqtt=args.mqtt,
        duration=args.duration,
        sparkplug=args.sparkplug,
        console_port=args.console_port,
    )


def cmd_hash_password(args: argparse.Namespace) -> int:
    from edge_agent.console.auth import hash_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: the two passwords differ", file=sys.stderr)
            return 2
    if len(password) < MIN_PASSWORD:
        print(f"error: use at least {MIN_PASSWORD} characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def add_demo_and_console_commands(commands: Commands[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo", help="start the bundled simulators and the agent, and show live values"
    )
    demo.add_argument("--mqtt", metavar="HOST:PORT", help="also publish to this MQTT broker")
    demo.add_argument(
        "--sparkplug",
        metavar="HOST:PORT",
        help="also publish as a Sparkplug B edge node to this MQTT broker "
        "(group id and edge node id: the plant name)",
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("-c", "--config", help="plant file (default: configs/demo-plant.yaml)")
    demo.add_argument(
        "--console-port",
        type=int,
        default=DEMO_CONSOLE_PORT,
        metavar="PORT",
        help=f"web console on 127.0.0.1:PORT (default {DEMO_CONSOLE_PORT}; 0: none)",
    )
    demo.set_defaults(handler=cmd_demo)

    console = commands.add_parser("console", help="the web console: make a password hash")
    actions = console.add_subparsers(dest="console_command", required=True)
    hashing = actions.add_parser(
        "hash-password",
        help="print the argon2 hash for service.console.users[].password_hash",
    )
    hashing.add_argument(
        "--stdin", action="store_true", help="read the password from the first line of stdin"
    )
    hashing.set_defaults(handler=cmd_hash_password)

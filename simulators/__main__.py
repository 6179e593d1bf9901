"""``python -m simulators -c PROFILE [--duration S]``: the same as ``edge-agent simulate``."""

from __future__ import annotations

import argparse

from simulators.cli import run_simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators", description="Serve simulated Modbus equipment."
    )
    parser.add_argument(
        "-c", "--config", required=True, help="profile file, or a shipped name (demo-plant)"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    args = parser.parse_args(argv)
    return run_simulate(args.config, args.duration)


if __name__ == "__main__":
    raise SystemExit(main())

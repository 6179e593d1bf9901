"""``edge-agent report -c plant.yaml [--day D] [--shift NAME] [--text | --list]``.

Finds a report the agent kept in the plant's state directory (docs/METRICS.md,
"Reports") without the console: the paths of its files (HTML to print, CSV for Excel,
JSON), or the report itself as text, or the list of kept reports. Nothing is
computed here: the agent made the report when its day or shift closed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_agent.config import PlantConfig

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_CONFIG = 2

Loader = Callable[[str], "PlantConfig | None"]


def _day(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def add_report_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], load: Loader
) -> None:
    report = commands.add_parser(
        "report", help="find a daily or shift energy report the agent kept (state_dir/reports)"
    )
    report.add_argument("-c", "--config", required=True, help="plant YAML file")
    report.add_argument("--day", type=_day, help="the report's day, YYYY-MM-DD (default: newest)")
    report.add_argument("--shift", metavar="NAME", help="that shift's report instead of the day's")
    shown = report.add_mutually_exclusive_group()
    shown.add_argument("--text", action="store_true", help="print the report, not its paths")
    shown.add_argument("--list", action="store_true", help="list every kept report")

    def run(args: argparse.Namespace) -> int:
        return cmd_report(args, load)

    report.set_defaults(handler=run)


def cmd_report(args: argparse.Namespace, load: Loader) -> int:
    # The reports' modules load the config models: with the command, not with --help.
    from edge_agent.metrics.report_files import find_report, list_reports, reports_root
    from edge_agent.metrics.report_render import render_text

    config = load(args.config)
    if config is None:
        return EXIT_CONFIG
    root = reports_root(config.state_dir)
    if args.list:
        entries = list_reports(root)
        for entry in entries:
            first = next(iter(sorted(entry.files.items())))[1]  # .csv, .html, .json
            print(f"{entry.kind:6} {entry.stem:28} {root / entry.files.get('.html', first)}")
        if not entries:
            print(f"no reports in {root} yet")
        return EXIT_OK
    found = find_report(root, args.day, args.shift)
    if found is None:
        what = f"{args.shift} shift report" if args.shift else "daily report"
        when = f" of {args.day}" if args.day else ""
        print(
            f"edge-agent report: no {what}{when} in {root} (a report is made when its window "
            "closes; `edge-agent report --list` shows the kept ones)",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    entry = found
    if args.text:
        json_file = entry.files.get(".json")
        if json_file is None:
            print(f"edge-agent report: {entry.stem} has no JSON file in {root}", file=sys.stderr)
            return EXIT_NOT_FOUND
        path = root / json_file
        try:
            text = render_text(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # A file cut by a full disk or edited by hand: say which, not a traceback.
            print(f"edge-agent report: cannot read {path}: {exc!r}", file=sys.stderr)
            return EXIT_NOT_FOUND
        print(text, end="")
        return EXIT_OK
    for suffix in (".html", ".csv", ".json"):
        if suffix in entry.files:
            print(root / entry.files[suffix])
    return EXIT_OK

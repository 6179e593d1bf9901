"""``edge-agent templates list|show NAME``: the device template library, readable.

``list`` names every template with its title and the manual it was written from;
``show`` prints one template's register map as a table, with the file it comes from.
``--dir`` adds a directory of your own templates (as ``templates_dir`` does in a plant
file), which win over the bundled ones of the same name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.bundled import templates_dir as bundled_dir

if TYPE_CHECKING:  # the config models load with the command, not with `edge-agent --help`
    from edge_agent.config.template_files import DeviceTemplate, LoadedTemplate, TemplateTag

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_UNKNOWN = 2


def add_template_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    templates = commands.add_parser("templates", help="the device template library: list, show")
    actions = templates.add_subparsers(dest="templates_action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="every template: name and title (show NAME: its map and source)"
    )
    show = actions.add_parser("show", help="one template's register map and file")
    show.add_argument("name", help="template name from `templates list`")
    for parser in (listing, show):
        parser.add_argument("--dir", type=Path, help="your own templates (they win)")
    listing.set_defaults(handler=run_list)
    show.set_defaults(handler=run_show)


def run_list(args: argparse.Namespace) -> int:
    from edge_agent.config.loader import describe_error
    from edge_agent.config.template_files import library, load_template

    known = library(args.dir)
    if not known:
        print("no templates found")
        return EXIT_OK
    rows = []
    broken = 0
    for name, path in known.items():
        loaded = load_template(path, name, describe_error)
        mine = "" if path.parent == bundled_dir() else " [yours]"
        if loaded.model is None:
            broken += 1
            rows.append((name + mine, f"(has problems: edge-agent templates show {name})", ""))
            continue
        rows.append((name + mine, loaded.model.title, ""))
    # Two columns fit an 80-column SSH session; the manual each map was written from
    # (title, version, date, what was verified) is on `show`.
    print(_table(("TEMPLATE", "TITLE"), [row[:2] for row in rows]))
    print("\nedge-agent templates show NAME: its register map, and the manual it is from")
    return EXIT_BROKEN if broken else EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    from edge_agent.config.loader import describe_error
    from edge_agent.config.template_files import library, load_template, unknown_template

    known = library(args.dir)
    path = known.get(args.name)
    if path is None:
        print(f"edge-agent: {unknown_template(args.name, known)}", file=sys.stderr)
        return EXIT_UNKNOWN
    loaded = load_template(path, args.name, describe_error)
    if loaded.model is None:
        for problem in loaded.problems:
            print(problem, file=sys.stderr)
        return EXIT_BROKEN
    print(render_template(loaded, loaded.model))
    return EXIT_OK


def render_template(loaded: LoadedTemplate, model: DeviceTemplate) -> str:
    """A template as a person reads it: what it is, where from, then the register map."""
    source = model.source
    lines = [
        f"{model.template}: {model.title}",
        f"file: {loaded.path}",
        f"written from: {source.document}",
        f"  {source.publisher}, version {source.version}, date {source.date}",
        *_wrap(source.note, "  "),
        f"device_type: {model.device_type or '-'}",
    ]
    defaults = model.defaults.model_dump(exclude_none=True)
    if defaults:
        lines.append("defaults: " + ", ".join(f"{k} {v}" for k, v in defaults.items()))
    meter, machine = model.roles.meter, model.roles.machine
    if meter is not None:
        parts = [
            f"{k} {r.tag} ({r.unit})"
            for k, r in (("counter", meter.counter), ("power", meter.power))
            if r
        ]
        lines.append("role meter: " + ", ".join(parts))
    if machine is not None:
        lines.append(f"role machine: state {machine.state.tag}")
    order = model.defaults.byte_order or "ABCD"
    for group in model.poll_groups:
        lines += ["", f"poll group {group.name}, every {group.interval:g}s"]
        rows = [_row(tag, order) for tag in group.tags]
        lines.append(
            _table(
                ("TAG", "TABLE", "ADDRESS", "HEX", "TYPE", "ORDER", "SCALE", "UNIT", "NOTE"), rows
            )
        )
    lines += ["", "addresses are 0-based protocol addresses (what goes on the wire)"]
    return "\n".join(lines)


def _row(tag: TemplateTag, device_order: str) -> tuple[str, ...]:
    if tag.enum is not None:
        note = ", ".join(f"{k} {v}" for k, v in tag.enum.items())
    else:
        note = tag.description
    kind = (
        tag.type
        + (f"[{tag.length}]" if tag.length else "")
        + (f" bit {tag.bit}" if tag.bit is not None else "")
    )
    return (
        tag.name,
        tag.table,
        str(tag.address),
        f"0x{tag.address:04X}",
        kind,
        "-" if tag.type in ("bool", "int16", "uint16") else (tag.byte_order or device_order),
        f"{tag.scale:g}" + (f" +{tag.offset:g}" if tag.offset else ""),
        tag.unit or "-",
        note,
    )


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def _wrap(text: str, indent: str, width: int = 88) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(indent + current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(indent + current)
    return lines

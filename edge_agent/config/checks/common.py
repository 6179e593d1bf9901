"""What every cross-field rule shares: a location in the YAML, a finding, duplicate names.

A :data:`Loc` is the path of mapping keys and list indices to a value
(``("devices", 3, "name")``); the loader turns it into a line of the file, so a
rule only has to say where, never which line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: A location inside the YAML document: mapping keys and list indices.
Loc = tuple[str | int, ...]
#: One problem: where it is and what is wrong, in words for the plant engineer.
Finding = tuple[Loc, str]


def format_path(path: Loc) -> str:
    """``("devices", 3, "name")`` -> ``devices[3].name``.

    A key that would not read as one (empty, a line break or another unprintable
    character, a ``True`` pydantic put in the path) is quoted: ``labels['a\\nb']``,
    so that a problem stays on one line.
    """
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and part and part.isprintable():
            out += f".{part}" if out else part
        else:
            out += f"[{short_repr(part)}]"
    return out or "(top level)"


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: a 100 kB value is one line of output."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_path(path: Loc) -> str:
    """The item a ``name`` belongs to: ``devices[3].name`` -> ``devices[3]``."""
    return format_path(path[:-1] if path and path[-1] == "name" else path)


def duplicates(
    named: Iterable[tuple[Loc, str]], what: str, where: Callable[[Loc], str] = short_path
) -> list[Finding]:
    """A finding at every repeat of a name, pointing back at its first use."""
    first: dict[str, Loc] = {}
    found: list[Finding] = []
    for path, name in named:
        if name in first:
            found.append((path, f"duplicate {what} {name!r} (also at {where(first[name])})"))
        else:
            first[name] = path
    return found


def used_twice(
    named: Iterable[tuple[Loc, str]], what: str, line_of: Callable[[Loc], int] | None = None
) -> list[Finding]:
    """One finding per name used more than once, at its second use, naming every use.

    ``device name 'meter' used twice, lines 5 and 12``: one clear message, and the
    rules that look devices up by name say nothing more about it (which one is meant
    is unknown until the name is unique).
    """
    uses: dict[str, list[Loc]] = {}
    for path, name in named:
        uses.setdefault(name, []).append(path)
    found: list[Finding] = []
    for name, paths in uses.items():
        if len(paths) < 2:
            continue
        count = "twice" if len(paths) == 2 else f"{len(paths)} times"
        if line_of is not None:
            where = [str(line_of(path)) for path in paths]
            places = "lines " + ", ".join(where[:-1]) + " and " + where[-1]
        else:
            shown = [short_path(path) for path in paths]
            places = ", ".join(shown[:-1]) + " and " + shown[-1]
        found.append((paths[1], f"{what} {name!r} used {count}, {places}"))
    return found

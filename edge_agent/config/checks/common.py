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

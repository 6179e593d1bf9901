"""YAML syntax errors in the words a person needs: which line to fix, and how.

libyaml says "found character that cannot start any token" for a tab, and reports an
indentation mistake where it noticed it, which is often the line after the mistake
(``name x`` without its colon runs on into the next line, and the error lands
there). Two cases are recognised:

- a tab in the indentation: named as a tab, with its line and column;
- a line that lines up with no key or list item above it, or a key that lost its
  colon: "check the indentation of line N" / "line N has no ':' after its key".

Anything else keeps libyaml's own words.
"""

from __future__ import annotations

import yaml

_INDENTATION_PROBLEMS = (
    "did not find expected key",
    "did not find expected '-' indicator",
    "expected <block end>",
    "mapping values are not allowed",
    "found a tab character that violates indentation",
)


def syntax_message(exc: yaml.MarkedYAMLError, text: str) -> tuple[int, str] | None:
    """(line, message) for a tab or an indentation mistake; None for anything else."""
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return None
    lines = text.splitlines()
    problem = exc.problem or ""
    tab = _first_indenting_tab(lines, mark.line)
    if tab is not None:
        line, column = tab
        return line, (
            f"a tab at column {column} indents this line; YAML indents with spaces only: "
            "replace the tab with spaces"
        )
    unclosed = _unclosed(exc)
    if unclosed is not None:
        return unclosed
    if not any(problem.startswith(p) for p in _INDENTATION_PROBLEMS):
        return None
    line = mark.line  # 0-based
    if problem.startswith("mapping values are not allowed") and line < len(lines):
        before = _without_comment(lines[line])[: mark.column]
        if ": " in before:
            return line + 1, (
                f"line {line + 1} has a second ': ' in its value; quote the value (key: \"a: b\")"
            )
    if problem.startswith(("mapping values are not allowed", "did not find expected key")):
        previous = _previous_content(lines, line)
        if previous is not None and _lost_its_colon(lines[previous]):
            key = lines[previous].strip()
            return previous + 1, (
                f"line {previous + 1} ({key!r}) has no ':' after its key, so YAML read it "
                f"together with line {line + 1}; write key: value"
            )
    return line + 1, (
        f"check the indentation of line {line + 1}: it lines up with no key or list item "
        f"above it (YAML: {problem})"
    )


def _unclosed(exc: yaml.MarkedYAMLError) -> tuple[int, str] | None:
    """A quote, ``{`` or ``[`` opened and never closed: the line where it opened."""
    start = exc.context_mark
    context = exc.context or ""
    if start is None:
        return None
    where = f"line {start.line + 1} column {start.column + 1}"
    if context.startswith("while scanning a quoted scalar"):
        return start.line + 1, f"the quote at {where} is not closed"
    for opener, what in (("{", "flow mapping"), ("[", "flow sequence")):
        if context.startswith(f"while parsing a {what}"):
            closer = "}" if opener == "{" else "]"
            return start.line + 1, (
                f"the {opener} at {where} is not closed with {closer} "
                "(or a ',' is missing between its items)"
            )
    return None


def _lost_its_colon(line: str) -> bool:
    """A line that reads like a key without its colon (``name meter``, ``- name meter``)."""
    text = _without_comment(line).strip()
    if text.startswith("- "):
        text = text[2:].strip()
    return bool(text) and ":" not in text and text[0] not in "-[{\"'|>&*!#" and " " in text


def _first_indenting_tab(lines: list[str], upto: int) -> tuple[int, int] | None:
    """(line, column), 1-based, of the first tab in the indentation of lines up to
    ``upto`` (0-based, included)."""
    for number, line in enumerate(lines[: upto + 1]):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            return number + 1, indent.index("\t") + 1
    return None


def _previous_content(lines: list[str], line: int) -> int | None:
    """The nearest line before ``line`` (0-based) that holds more than a comment."""
    for number in range(min(line, len(lines)) - 1, -1, -1):
        if _without_comment(lines[number]).strip():
            return number
    return None


def _without_comment(line: str) -> str:
    cut = line.find(" #")
    return line if cut < 0 else line[:cut]

"""The console's report files: the list, and each file, read-only from the state directory.

``GET /console/api/reports`` lists what :mod:`edge_agent.metrics.report_files` keeps;
``GET /console/reports/<kind>/<file>`` serves one of them. A request names a file only
through a pattern that a report file's name fits (``daily/2026-12-04.html``,
``shift/2026-12-04-night.csv``): no other character, no ``..``, no second slash, and
the file must be a regular file directly in its kind's directory (not a link). So no
request reaches anything else on the gateway, whatever it spells.

The HTML page is answered with its own Content-Security-Policy: no script, nothing
loaded, only its one inline style (by hash).
"""

from __future__ import annotations

import re
import stat
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from edge_agent.metrics.report_files import KINDS, list_reports
from edge_agent.metrics.report_render import STYLE_CSP_HASH

#: Where the console serves report files.
PREFIX: Final = "/console/reports/"
_RELATIVE: Final = re.compile(
    r"(?P<kind>daily|shift)/(?P<name>\d{4}-\d{2}-\d{2}(?:-[A-Za-z0-9][A-Za-z0-9_.\-]*)?"
    r"\.(?P<suffix>html|csv|json))\Z"
)
TYPES: Final = {
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json; charset=utf-8",
}
HTML_CSP: Final = (
    f"default-src 'none'; style-src {STYLE_CSP_HASH}; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


def reports_document(root: Path) -> dict[str, Any]:
    """``/console/api/reports``: every kept report, newest first, with its files' URLs."""
    return {
        "reports": [
            {
                "report": entry.kind,
                "day": entry.day,
                "shift": entry.shift,
                "files": {
                    suffix.lstrip("."): PREFIX + relative
                    for suffix, relative in sorted(entry.files.items())
                },
            }
            for entry in list_reports(root)
        ]
    }


def report_path(root: Path, relative: str) -> Path | None:
    """The report file ``relative`` names under ``root``, or None (see the module
    docstring: anything but a report file's own name is refused)."""
    found = _RELATIVE.match(relative)
    if found is None or found["kind"] not in KINDS:
        return None
    path = root / found["kind"] / found["name"]
    try:
        mode = path.lstat().st_mode
    except OSError:
        return None
    return path if stat.S_ISREG(mode) else None


def read_report(root: Path, relative: str) -> tuple[bytes, str, str] | None:
    """(body, content type, file name) of a report file, or None if there is none.
    Blocking: the console runs it on its worker thread."""
    path = report_path(root, relative)
    if path is None:
        return None
    try:
        body = path.read_bytes()
    except OSError:
        return None
    return body, TYPES[path.suffix.lstrip(".")], path.name


def report_answer(found: tuple[bytes, str, str] | None) -> web.Response:
    """The answer for a report file: the page to view, the CSV and JSON to download."""
    if found is None:
        return web.json_response({"error": "report"}, status=HTTPStatus.NOT_FOUND.value)
    body, content_type, name = found
    headers = {"Content-Type": content_type}
    if content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = HTML_CSP
    else:
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return web.Response(body=body, headers=headers)

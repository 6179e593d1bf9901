"""What every console answer shares: its headers, JSON, the static files, the language.

Kept apart from the routes (:mod:`edge_agent.console.app`) and the live stream
(:mod:`edge_agent.console.stream`), which both answer with them.
"""

from __future__ import annotations

import hashlib
import json
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

LANG_COOKIE = "edge_lang"
LANGUAGES = ("en", "zh")
JSON = "application/json"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Server": "edge-agent",
}

STATIC = Path(str(resources.files("edge_agent.console") / "static"))
#: Types of the files the console serves (anything else is not served).
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

StaticFiles = dict[str, tuple[bytes, str, str]]


def file_answer(files: StaticFiles, request: web.Request, relative: str) -> web.Response:
    """A file of ``static/`` from memory, revalidated by its ETag (``no-cache``)."""
    found = files.get(relative)
    if found is None:
        raise web.HTTPNotFound
    body, content_type, etag = found
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=HTTPStatus.NOT_MODIFIED.value, headers=headers)
    return web.Response(body=body, headers={**headers, "Content-Type": content_type})


def language(request: web.Request) -> str:
    """``zh`` or ``en``: the switch's cookie, else the browser's Accept-Language."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    best, best_q = "en", -1.0
    for part in request.headers.get("Accept-Language", "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


def iso_wall(wall: float) -> str | None:
    from edge_agent.model import iso_utc_ms

    return iso_utc_ms(int(wall * 1e9)) if wall else None


def text(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


def json_answer(document: Any, status: HTTPStatus = HTTPStatus.OK) -> web.Response:
    return web.Response(status=status.value, text=text(document), content_type="application/json")


def static_files(root: Path = STATIC) -> StaticFiles:
    """Every servable file under ``root`` by its relative path: (bytes, type, ETag).

    Read once when the console is made: the pages and the chart library are about
    200 KB, and a request then never touches the disk (nor a path a request named).
    """
    files: StaticFiles = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in TYPES:
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            files[path.relative_to(root).as_posix()] = (body, TYPES[path.suffix], etag)
    return files


def redirect(location: str) -> web.Response:
    return web.Response(status=HTTPStatus.FOUND.value, headers={"Location": location})


def json_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object of a POST body, or None (not JSON, not an object). Its size is
    bounded by the app (client_max_size)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None

"""The console's report files over real HTTP: behind the login, read-only, no way out.

The demo plant runs with a console that needs a login; its state directory holds a
report (written as the agent writes them). Requests go over loopback, the traversal
attempts as raw request lines so that no client library tidies the path first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.console.reports import HTML_CSP
from edge_agent.metrics.report_files import ReportFiles, reports_root
from tests.console_support import PASSWORD, PASSWORD_HASH, console_yaml, running_console
from tests.integration.test_console_review import _exchange, _login
from tests.unit.test_reports import day_batches, reporter

pytestmark = pytest.mark.integration

USERS = "{users: [{name: alice, password_hash: '" + PASSWORD_HASH + "'}]}"

RAW_ATTEMPTS = (
    "/console/reports/../../metrics-state.json",
    "/console/reports/daily/../../metrics-state.json",
    "/console/reports/daily/%2e%2e/%2e%2e/metrics-state.json",
    "/console/reports/daily/..%2F..%2Fmetrics-state.json",
    "/console/reports/daily%2F..%2F..%2Fmetrics-state.json",
    "/console/reports/%2Fetc%2Fpasswd",
    "/console/reports//etc/passwd",
    "/console/reports/daily/2026-12-04.html%00.png",
    "/console/reports/daily/..\\..\\metrics-state.json",
)


async def _get(
    port: int, path: str, cookie: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\n"
    if cookie:
        head += f"Cookie: edge_session={cookie}\r\n"
    return await _exchange(port, [(head + "\r\n").encode()])


async def _logged_in(port: int) -> str:
    from tests.integration.test_console_review import _anonymous, _post

    cookie, csrf = await _anonymous(port)
    head, body = _post("/console/api/login", cookie, csrf, {"user": "alice", "password": PASSWORD})
    status, headers, _ = await _exchange(port, [head + body])
    assert status == 200
    return headers["session"]


async def test_report_files_are_served_to_a_login_and_nothing_else(tmp_path: Path) -> None:
    reporter(ReportFiles(reports_root(tmp_path), keep_days=400))(day_batches())
    (tmp_path / "metrics-state.json").write_text('{"secret": "state"}')
    async with running_console(tmp_path, console_yaml(USERS)) as console:
        port = int(console.base.rsplit(":", 1)[1])
        # Without a login: neither the list nor a file.
        status, _, _ = await _get(port, "/console/api/reports")
        assert status == 401
        status, _, body = await _get(port, "/console/reports/daily/2026-12-04.html")
        assert status == 401
        assert b"plant-7" not in body
        assert await _login(port, "alice", "wrong") == 401

        cookie = await _logged_in(port)
        status, headers, body = await _get(port, "/console/api/reports", cookie)
        assert status == 200
        assert b'"html":"/console/reports/daily/2026-12-04.html"' in body
        status, headers, body = await _get(port, "/console/reports/daily/2026-12-04.html", cookie)
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["content-security-policy"] == HTML_CSP
        assert headers["x-frame-options"] == "DENY"
        assert b"Daily energy report" in body
        status, headers, body = await _get(port, "/console/reports/daily/2026-12-04.csv", cookie)
        assert status == 200
        assert body.startswith(b"\xef\xbb\xbf")
        assert "attachment" in headers["content-disposition"]
        for attempt in RAW_ATTEMPTS:
            status, _, body = await _get(port, attempt, cookie)
            assert status in (400, 404), (attempt, status)
            assert b"secret" not in body, attempt
            assert b"root:" not in body, attempt
        # Read-only: nothing but GET.
        status, _, _ = await _exchange(
            port,
            [
                (
                    "DELETE /console/reports/daily/2026-12-04.html HTTP/1.1\r\nHost: x\r\n"
                    f"Cookie: edge_session={cookie}\r\n\r\n"
                ).encode()
            ],
        )
        assert status == 405
        assert (tmp_path / "reports" / "daily" / "2026-12-04.html").exists()

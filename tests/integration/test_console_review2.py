"""Fresh-eyes review of the console's latest changes (issue 15), on real servers.

Each test asserts what SHOULD hold and fails on main at the time of the review.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.console_support import PASSWORD_HASH, console_yaml, running_console
from tests.integration.test_console_review import _anonymous, _exchange
from tests.integration.test_modbus_hostile import drivers_for, plant, read, tcp
from tests.modbus_hostile import Asked, HostileTcpServer, Reply, honest_pdu

pytestmark = pytest.mark.integration

USERS = "{users: [{name: alice, password_hash: '" + PASSWORD_HASH + "'}]}"


async def test_a_password_no_utf8_can_carry_is_refused_not_a_server_error(
    tmp_path: Path,
) -> None:
    """JSON may carry a lone surrogate (\\ud800); argon2 encodes the password as UTF-8
    and raises UnicodeEncodeError: a 500, and 'health endpoint failed to answer' with
    its traceback in the log (and on the config page), for a malformed login."""
    async with running_console(tmp_path, console_yaml(USERS)) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        cookie, csrf = await _anonymous(port)
        body = b'{"user": "alice", "password": "abc\\ud800"}'
        head = (
            f"POST /console/api/login HTTP/1.1\r\nHost: x\r\nCookie: edge_session={cookie}\r\n"
            f"X-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        status, _headers, answer = await _exchange(port, [head + body])
        assert status in (400, 401), (status, answer)
        assert json.loads(answer)["error"] in ("bad request", "login")


async def test_raw_registers_while_a_read_is_on_its_way_are_the_last_finished_reads() -> None:
    """The device page pairs the ring's newest batch with driver.raw(group). The Modbus
    driver blanks raw[group] when a read STARTS (and fills it request by request), so
    while a read waits for its answer (or for a shared RTU bus) the page shows the
    values of the last read beside no registers, or beside the next read's registers."""

    def slow_after_first(asked: Asked) -> list[Reply]:
        # The first answer at once, later ones after a while (a slow unit, a busy bus),
        # within the device's 0.25 s timeout.
        return [Reply(honest_pdu(asked), delay=0.0 if asked.seq == 0 else 0.1)]

    server = HostileTcpServer({1: slow_after_first})
    async with server, drivers_for(plant(tcp(server.port), units=(1,))) as drivers:
        driver = drivers["hostile"]
        driver.record_raw()
        first = await read(driver, "low")
        assert not isinstance(first, str)
        assert first.good_count == 2
        shown_after_first = list(driver.raw("low"))
        assert all(shown_after_first)  # "03E8", "03E9"
        second = asyncio.create_task(read(driver, "low"))
        while len(server.asked) < 2:
            await asyncio.sleep(0.01)
        # The device page asks now: the ring's newest batch is still `first`.
        shown_meanwhile = list(driver.raw("low"))
        await second
        assert shown_meanwhile == shown_after_first


async def test_a_csrf_header_of_other_than_ascii_is_refused_not_a_server_error(
    tmp_path: Path,
) -> None:
    """Auth.csrf_ok calls hmac.compare_digest(str, str), which raises TypeError for a
    string with a character beyond ASCII: anyone who can reach the listener gets a 500
    and puts an error with its traceback in the log and on the config page."""
    async with running_console(tmp_path, console_yaml(USERS)) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        cookie, _csrf = await _anonymous(port)
        head = (
            "POST /console/api/logout HTTP/1.1\r\nHost: x\r\n"
            f"Cookie: edge_session={cookie}\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\n"
        ).encode() + b"X-CSRF-Token: \xc3\xa9t\xc3\xa9\r\n\r\n{}"
        status, _headers, answer = await _exchange(port, [head])
        assert status == 403, (status, answer)


async def test_a_session_cookie_of_bytes_no_utf8_decodes_is_a_new_session(
    tmp_path: Path,
) -> None:
    """An anonymous token is signed as token.encode(): a cookie whose bytes are no UTF-8
    reaches it as surrogates and raises UnicodeEncodeError, before any page is served."""
    async with running_console(tmp_path, console_yaml(USERS)) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        head = (
            b"GET /console/api/session HTTP/1.1\r\nHost: x\r\n"
            b"Cookie: edge_session=a.\xff\xfe\r\n\r\n"
        )
        status, _headers, answer = await _exchange(port, [head])
        assert status == 200, (status, answer)

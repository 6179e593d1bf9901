"""The device page's write form in a real browser (Debian's chromium): shown to a user with
``writes: true`` for a tag whose write: block lists console, sent through the page's own
POST (session + CSRF) to the stand-in gate, its result shown; hidden from a user without
the permission; in Chinese too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console_support import PASSWORD, PASSWORD_HASH, console_yaml
from tests.integration.browser import Browser, ConsoleThread, chromium, missing_browser
from tests.integration.test_console_browser import _path, _session, _sign_in, _sign_in_over_http
from tests.integration.test_console_write import WRITABLE
from tests.writes_support import RecordingGate

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser())),
]

USERS = console_yaml(
    "{users: [{name: alice, password_hash: '" + PASSWORD_HASH + "', writes: true}, "
    "{name: bob, password_hash: '" + PASSWORD_HASH + "'}]}"
)


@pytest.fixture(scope="module")
def gate() -> RecordingGate:
    return RecordingGate()


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, gate: RecordingGate
) -> Iterator[ConsoleThread]:
    with ConsoleThread(
        tmp_path_factory.mktemp("console"), USERS, replace=dict(WRITABLE)
    ) as running:
        health = running.running.supervisor.health
        assert health is not None
        assert health.console is not None
        door = health.console.writes
        running.call(lambda: setattr(door, "gate", lambda: gate))
        # The console checks passwords on a thread of its own, started by the first login:
        # one here, so that thread belongs to the module, not a test.
        _sign_in_over_http(running.base)
        yield running


def _signed_in(browser: Browser, user: str) -> None:
    browser.open("/console/login")
    browser.clear_cookies()
    browser.open("/console/login")
    _sign_in(browser, user, PASSWORD)
    browser.wait(lambda: _path(browser) == "/console/", 10, "the sign-in")
    assert _session(browser)["user"] == user


def _form(browser: Browser) -> Any:
    browser.open("/console/#/device/cnc-1")
    return browser.wait(lambda: browser.find("write-form", tag="alarm_code"), 15, "the form")[0]


def _send(browser: Browser, form: Any, value: str, *, dry_run: bool) -> Any:
    field = form.find_element("css selector", "[data-testid=write-value]")
    field.clear()
    field.send_keys(value)
    box = form.find_element("css selector", "[data-testid=write-dry-run]")
    if box.is_selected() != dry_run:
        box.click()
    result = form.find_element("css selector", "[data-testid=write-result]")
    before = result.text
    form.find_element("css selector", "[data-testid=write-send]").click()
    browser.wait(
        lambda: result.text != before and result.get_attribute("data-outcome"), 10, "the result"
    )
    return result


def test_a_user_with_writes_sends_from_the_device_page(
    console: ConsoleThread, gate: RecordingGate
) -> None:
    with chromium("en") as browser:
        browser.base = console.base
        _signed_in(browser, "alice")
        browser.problems()
        form = _form(browser)
        assert "min 0" in form.text
        assert "max 100" in form.text
        # Only the writable tags have a form: alarm_code (made writable here) and mode
        # (writable in the demo plant).
        assert len(browser.find("write-form")) == 2
        assert browser.find("write-form", tag="mode")
        result = _send(browser, form, "7", dry_run=True)
        assert result.get_attribute("data-outcome") == "dry_run"
        assert result.text.startswith("Dry run")
        result = _send(browser, form, "8", dry_run=False)
        assert result.get_attribute("data-outcome") == "applied"
        assert "read back 8" in result.text
        requests = [
            (r.identity, r.channel, r.device, r.tag, r.value, r.dry_run) for r in gate.requests
        ]
        assert requests == [
            ("alice", "console", "cnc-1", "alarm_code", 7, True),
            ("alice", "console", "cnc-1", "alarm_code", 8, False),
        ]
        assert browser.problems() == []

        # bob may look, not write: no form, but the page says what is writable and who
        # may write it (a trial of issue 18 saw nothing there and did not know why).
        _signed_in(browser, "bob")
        browser.open("/console/#/device/cnc-1")
        browser.wait(lambda: browser.find("tag-row", tag="alarm_code"), 15, "the tags")
        card = browser.wait(lambda: browser.find("write-locked"), 15, "the note")[0]
        assert card.is_displayed()
        assert "sign in as a user with writes: true" in card.text
        assert "alarm_code" in card.text
        assert browser.find("write-form") == []
        assert browser.find("write-no-users") == []  # this console has users
        assert len(gate.requests) == 2


def test_the_write_form_in_chinese(console: ConsoleThread, gate: RecordingGate) -> None:
    with chromium("zh-CN") as browser:
        browser.base = console.base
        _signed_in(browser, "alice")
        form = _form(browser)
        assert "最小 0" in form.text
        result = _send(browser, form, "9", dry_run=True)
        assert result.text.startswith("试运行")
        assert browser.find("write-card")[0].text.startswith("写入")
        assert browser.problems() == []


@pytest.mark.parametrize(
    ("language", "words", "no_users"),
    [
        ("en", "sign in as a user with writes: true", "This console has no users"),
        ("zh-CN", "writes: true", "此控制台没有用户"),
    ],
)
def test_a_console_without_users_says_which_tags_are_writable(
    tmp_path_factory: pytest.TempPathFactory, language: str, words: str, no_users: str
) -> None:
    """The demo's console (loopback, no users): nobody writes, and the device page says
    so where a tag is writable instead of showing nothing."""
    with (
        ConsoleThread(
            tmp_path_factory.mktemp("console"), console_yaml(), replace=dict(WRITABLE)
        ) as running,
        chromium(language) as browser,
    ):
        browser.base = running.base
        browser.open("/console/#/device/cnc-1")
        locked = browser.wait(lambda: browser.find("write-locked"), 15, "the note")[0]
        assert locked.is_displayed()
        assert words in locked.text
        assert no_users in locked.text
        assert "alarm_code" in locked.text
        assert "mode" in locked.text
        assert browser.find("write-form") == []
        assert browser.problems() == []

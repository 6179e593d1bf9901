"""The web console in a real browser: Debian's chromium against the demo plant's simulators.

One console (login required, commissioning on) and one English chromium serve the whole
module (tests/integration/browser.py says why the agent runs in a thread); the Chinese
test starts its own chromium, since the browser's language is fixed at its start. The
tests run in file order: the device going offline comes late, as it changes the plant, and the
streams' release last, as it opens and drops several.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from simulators.modbus_server import UnitFault
from tests.console_support import PASSWORD, PASSWORD_HASH, console_yaml
from tests.integration.browser import (
    PAGES,
    Browser,
    ConsoleThread,
    chromium,
    missing_browser,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser())),
]

#: alice may commission; the console's commissioning switch is on, so every page is real.
USERS = console_yaml(
    "{users: [{name: alice, password_hash: '" + PASSWORD_HASH + "', commissioning: true}],"
    " commissioning: true}"
)

#: Seconds between two events of the console's live stream (the page's update rate).
STREAM_PERIOD = 1.0
#: What the offline test allows beyond two poll intervals and one stream period: the
#: browser's render and this test's own polling, on a busy 2-core CI machine.
SLACK = 2.0


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleThread]:
    with ConsoleThread(tmp_path_factory.mktemp("console"), USERS) as running:
        running.wait(lambda: all(s.counters.good_polls >= 3 for s in running.agent.sources), 30)
        # The console checks passwords on a thread of its own, started by the first login:
        # one here, in the module's setup, so that thread belongs to the module, not a test.
        _sign_in_over_http(running.base)
        yield running


@pytest.fixture(scope="module")
def devices(console: ConsoleThread) -> int:
    """How many devices the demo plant has (its plant page lists each)."""
    return len(console.agent.config.devices)


@pytest.fixture(scope="module")
def browser(console: ConsoleThread) -> Iterator[Browser]:
    with chromium("en") as english:
        english.base = console.base
        yield english


@pytest.fixture
def signed_in(browser: Browser) -> Browser:
    """The English browser, signed in as alice, its console log and CSP record emptied."""
    _ensure_signed_in(browser)
    browser.problems()
    return browser


def _ensure_signed_in(browser: Browser) -> None:
    browser.open("/console/login")
    if not _session(browser)["authenticated"]:
        _sign_in(browser, "alice", PASSWORD)
        browser.wait(lambda: _path(browser) == "/console/", 10, "the sign-in")


# ---------------------------------------------------------------- login and CSRF (first)


def test_login_and_csrf_in_the_browser(browser: Browser, devices: int) -> None:
    browser.open("/console/login")
    browser.clear_cookies()
    browser.problems()
    # Not signed in: the console sends the browser to the login page.
    browser.open("/console/")
    browser.wait(lambda: _path(browser) == "/console/login", 10, "the redirect to the login")
    assert browser.find("login-form")

    # A wrong password: an error shown, still on the login page.
    _sign_in(browser, "alice", "not the password")
    error = browser.wait(
        lambda: next((e for e in browser.find("login-error") if e.is_displayed()), None),
        10,
        "the login error",
    )
    assert error is not None
    assert error.text.strip()
    assert _path(browser) == "/console/login"

    # The right one: on the plant page, with the devices listed.
    browser.find("login-password")[0].clear()
    _sign_in(browser, "alice", PASSWORD)
    browser.wait(lambda: len(browser.find("device-row")) == devices, 15, "the plant page's devices")
    assert re.search(r"/console/(#/plant)?$", browser.driver.current_url)
    session = _session(browser)
    assert session["authenticated"] is True
    assert session["user"] == "alice"

    # From the page: a POST without the session's token, or with a forged one, is refused;
    # with it, the same request goes through (the target is a closed loopback port).
    body = {"target": "tcp://127.0.0.1:9", "unit": 1, "table": "holding", "address": 0}
    assert _post(browser, "/console/api/commission/read", body, None) == [403, {"error": "csrf"}]
    assert _post(browser, "/console/api/commission/read", body, "forged")[0] == 403
    status, answer = _post(browser, "/console/api/commission/read", body, session["csrf"])
    assert status == 200
    assert answer["ok"] is False  # nothing listens there: a failure, explained
    # The browser logs every error status: the refused login (401) and this test's own 403s.
    refused = "Failed to load resource: the server responded with a status of"
    expected = (f"api/login - {refused} 401", f"api/commission/read - {refused} 403")
    assert [p for p in browser.problems() if not any(e in p for e in expected)] == []


# ---------------------------------------------------------------- every page, no errors


@pytest.mark.parametrize(
    "route", [*(f"#/{page}" for page in PAGES if page != "device"), "#/device/line-meter"]
)
def test_every_page_loads_without_console_errors(signed_in: Browser, route: str) -> None:
    browser = signed_in
    browser.open(f"/console/{route}")
    _wait_rendered(browser, route)
    browser.js("return new Promise((done) => setTimeout(done, 1500))")  # live updates land
    assert browser.problems() == []
    # Nothing but the console's own origin: no CDN, no font or analytics request.
    resources = browser.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources
    assert all(r.startswith(browser.base + "/") for r in resources), resources


def test_the_login_page_loads_without_console_errors(browser: Browser) -> None:
    browser.open("/console/login")
    browser.clear_cookies()
    browser.problems()
    browser.open("/console/login")
    browser.wait(lambda: browser.find("login-form"), 10, "the login form")
    assert browser.problems() == []


def test_nothing_beyond_loopback_is_reachable(browser: Browser) -> None:
    """The dead proxy is in force for anything but loopback (192.0.2.1: TEST-NET-1)."""
    with pytest.raises(Exception, match="ERR_PROXY_CONNECTION_FAILED"):
        browser.driver.get("http://192.0.2.1/")
    browser.console_log()  # the failed load's own entry


# ---------------------------------------------------------------- live values and charts


def test_live_values_change(signed_in: Browser) -> None:
    browser = signed_in
    browser.open("/console/#/device/line-meter")
    cell = browser.wait(lambda: _tag_value(browser, "power_active"), 15, "power_active's value")
    first = cell.text
    assert re.fullmatch(r"-?\d[\d.,]*", first), first
    # The meter's power wanders every poll (1 s); the page follows the live stream.
    browser.wait(lambda: _tag_value(browser, "power_active").text != first, 10, "a new value")
    assert browser.problems() == []


def test_a_tag_chart_and_the_sparklines_draw(signed_in: Browser, devices: int) -> None:
    browser = signed_in
    browser.open("/console/#/device/line-meter")
    row = browser.wait(lambda: browser.find("tag-row", tag="power_active"), 15, "the tag row")
    row[0].click()
    canvas = browser.wait(lambda: browser.find("tag-chart"), 10, "the tag chart")[0]
    line = browser.js(
        "const m = document.querySelector('.u-series:nth-child(2) .u-marker');"
        "return getComputedStyle(m).borderColor;"
    )
    # Pixels of the series' own colour (not the axes' or the grid's): the line is drawn.
    drawn = browser.wait(lambda: _pixels_like(browser, canvas, line) > 100, 10, "the line")
    assert drawn
    assert browser.problems() == []

    browser.open("/console/#/plant")
    browser.wait(lambda: len(browser.find("device-row")) == devices, 15, "the plant page")
    sparks = browser.wait(lambda: browser.find("sparkline"), 10, "the sparklines")
    browser.wait(
        lambda: all(_pixels_like(browser, s, "rgb(31, 111, 235)") > 10 for s in sparks),
        10,
        "every sparkline drawn",
    )


def test_the_energy_page_draws_state_timelines(signed_in: Browser) -> None:
    browser = signed_in
    browser.open("/console/#/energy")
    timelines = browser.wait(lambda: browser.find("state-timeline"), 15, "the state timelines")
    # Since the agent started, each machine has been in some state: a band of it is drawn.
    bands = browser.wait(
        lambda: all(
            browser.js("return arguments[0].querySelectorAll('rect').length", t) > 0
            for t in timelines
        ),
        10,
        "a band in every timeline",
    )
    assert bands
    assert browser.problems() == []


def test_the_language_switch(signed_in: Browser, devices: int) -> None:
    browser = signed_in
    browser.open("/console/#/plant")
    browser.wait(lambda: len(browser.find("device-row")) == devices, 15, "the plant page")
    english = browser.js("return document.querySelector('#nav').innerText")
    browser.find("lang-switch")[0].click()
    browser.wait(lambda: browser.js("return document.body.dataset.lang") == "zh", 10, "zh")
    chinese = browser.js("return document.querySelector('#nav').innerText")
    assert chinese != english
    assert re.search(r"[\u4e00-\u9fff]", chinese)
    browser.find("lang-switch")[0].click()
    browser.wait(lambda: browser.js("return document.body.dataset.lang") == "en", 10, "en")
    assert browser.problems() == []


# ---------------------------------------------------------------- Chinese


#: English that may stay on a Chinese page anywhere, besides the plant's own names (devices,
#: tags, units, enum labels: from the plant file). Kept small on purpose.
ALLOWED_ENGLISH = {
    "EN",  # the language switch's own label for English
    "OEE", "kWh", "kW", "kgce", "kgCO2e", "CO2e", "kvar", "kVA", "Hz", "rpm", "mm", "s",
    "ms", "min", "h", "Modbus", "TCP", "RTU", "OPC", "UA", "MQTT", "YAML", "UTC",
    "R2", "CV", "RMSE",  # a baseline fit's statistics, written so in Chinese texts too
}  # fmt: skip
#: Technical tokens a plant engineer types as they are: types, byte orders, hex words.
TECHNICAL = re.compile(r"u?int(16|32|64)|float(32|64)|[A-H]{2,8}|(0x)?[0-9A-F]{1,4}|\d.*")
#: Whole phrases left as they are: addresses (target examples) and the CLI's own command.
VERBATIM = re.compile(
    r"\b[a-z]+://\S*|\brun --once\b"
    # the plant file's own keys, which the user types as they are
    r"|\bwrites: true\b|\bservice\.console\.users\b"
)


def _words(text: str) -> list[str]:
    """The words of ``text`` as the page's data is split (``_DATA_WORDS``): a name such as
    ``line-meter`` or ``power_active`` stays one word; a word without letters is none."""
    words = (w.strip(".-") for w in re.split(r"[^A-Za-z0-9_.\-]+", text))
    return [w for w in words if re.search("[A-Za-z]", w)]


def test_the_chinese_pages_have_no_untranslated_labels(
    console: ConsoleThread, devices: int
) -> None:
    names = _plant_names(console)
    found: dict[str, set[str]] = {}
    with chromium("zh-CN") as browser:
        browser.base = console.base
        browser.open("/console/login")
        browser.wait(lambda: browser.find("login-form"), 10, "the login form")
        assert _session(browser)["lang"] == "zh"  # from the browser's Accept-Language
        browser.wait(lambda: browser.js("return document.title") != "Sign in", 10, "zh title")
        found["login"] = _english(browser, names, signed_in=False)
        _sign_in(browser, "alice", PASSWORD)
        browser.wait(lambda: len(browser.find("device-row")) == devices, 15, "the plant page")
        for route in ("#/plant", "#/device/line-meter", "#/device/cnc-1", "#/energy",
                      "#/commissioning", "#/config"):  # fmt: skip
            browser.js("location.hash = arguments[0]", route)  # as the menu does
            _wait_rendered(browser, route)
            browser.js("return new Promise((done) => setTimeout(done, 1000))")
            found[route] = _english(browser, names)
        assert browser.problems() == []
    untranslated = {page: sorted(words) for page, words in found.items() if words}
    assert not untranslated, f"English left on the Chinese pages: {untranslated}"


# ---------------------------------------------------------------- commissioning


def test_the_commissioning_tools_in_the_browser(console: ConsoleThread, signed_in: Browser) -> None:
    """read shows the registers and every decoding; read-once shows the device's tags."""
    from selenium.webdriver.support.ui import Select

    browser = signed_in
    port = console.plant.port("line-gateway")
    browser.open("/console/#/commissioning")
    target = browser.wait(lambda: browser.find("com-target"), 15, "the form")[0]
    target.clear()
    target.send_keys(f"tcp://127.0.0.1:{port}")
    Select(browser.find("com-table")[0]).select_by_value("input")
    for testid, value in (("com-unit", "1"), ("com-address", "16"), ("com-count", "2")):
        field = browser.find(testid)[0]
        field.clear()
        field.send_keys(value)
    browser.find("com-read")[0].click()
    browser.wait(lambda: len(browser.find("register-row")) == 2, 15, "the two registers")
    assert browser.find("decoding-row")
    assert not browser.find("com-error")

    Select(browser.find("com-once-device")[0]).select_by_value("line-meter")
    browser.find("com-once")[0].click()
    rows = browser.wait(lambda: browser.find("once-row"), 20, "the device read once")
    assert {row.get_attribute("data-tag") for row in rows} >= {"power_active", "voltage_l1"}
    assert not browser.find("com-error")
    assert browser.problems() == []


# ---------------------------------------------------------------- a device goes offline


def test_a_device_going_offline_turns_its_row_within_two_polls(
    console: ConsoleThread, signed_in: Browser
) -> None:
    browser = signed_in
    browser.open("/console/#/plant")
    press = browser.wait(lambda: browser.find("device-row", device="press-1"), 15, "press-1")
    assert press[0].get_attribute("data-state") == "online"
    interval = min(t.interval for t in console.agent.config.devices[2].describe().tags.values())
    assert console.agent.config.devices[2].name == "press-1"
    console.call(lambda: console.plant.set_unit_fault("press-1", UnitFault.GATEWAY_NO_RESPONSE))
    try:
        # A failed poll at the latest one interval on, its state in the next stream event.
        within = 2 * interval + STREAM_PERIOD + SLACK
        browser.wait(
            lambda: _row_state(browser, "press-1") in ("offline", "degraded"),
            within,
            f"press-1's row to leave online within {within} s",
        )
        assert _row_state(browser, "line-meter") == "online"  # the others are untouched
    finally:
        console.call(lambda: console.plant.set_unit_fault("press-1", None))
    browser.wait(lambda: _row_state(browser, "press-1") == "online", 30, "press-1 back")
    assert browser.problems() == []


# ---------------------------------------------------------------- streams (after all others)


def test_a_page_that_goes_away_releases_its_live_stream(
    console: ConsoleThread, signed_in: Browser
) -> None:
    browser = signed_in
    assert console.running.supervisor.health is not None
    server = console.running.supervisor.health.console
    assert server is not None
    for route in ("#/plant", "#/device/cnc-1", "#/plant", "#/device/press-1"):
        browser.open(f"/console/{route}")
        _wait_rendered(browser, route)
    browser.driver.get("about:blank")
    # Each load closed the previous page's stream; the server sees each end at its next
    # send, one stream period later.
    console.wait(lambda: server.streams == 0, 3 * STREAM_PERIOD + SLACK)


# ---------------------------------------------------------------- helpers


def _sign_in_over_http(base: str) -> None:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(base + "/console/api/session", timeout=10) as answer:
        csrf = json.load(answer)["csrf"]
    login = urllib.request.Request(
        base + "/console/api/login",
        data=json.dumps({"user": "alice", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
    )
    with opener.open(login, timeout=10) as answer:
        assert answer.status == 200


def _path(browser: Browser) -> str:
    return urlsplit(browser.driver.current_url).path


def _session(browser: Browser) -> dict[str, Any]:
    document: dict[str, Any] = browser.js(
        "return fetch('/console/api/session').then((r) => r.json())"
    )
    return document


def _sign_in(browser: Browser, user: str, password: str) -> None:
    browser.wait(lambda: browser.find("login-user"), 10, "the login form")
    name = browser.find("login-user")[0]
    name.clear()
    name.send_keys(user)
    secret = browser.find("login-password")[0]
    secret.clear()
    secret.send_keys(password)
    browser.find("login-submit")[0].click()


def _post(browser: Browser, path: str, body: object, token: str | None) -> list[Any]:
    """[status, JSON answer] of a fetch POST made by the page itself."""
    answer: list[Any] = browser.js(
        "const [path, body, token] = arguments;"
        "const headers = {'Content-Type': 'application/json'};"
        "if (token !== null) headers['X-CSRF-Token'] = token;"
        "return fetch(path, {method: 'POST', headers, body: JSON.stringify(body)})"
        "  .then(async (r) => [r.status, await r.json()]);",
        path,
        body,
        token,
    )
    return answer


def _wait_rendered(browser: Browser, route: str) -> None:
    """Until the page shows its content (not "loading")."""
    page = route.removeprefix("#/").split("/")[0]
    marks = {
        "plant": "device-row",
        "device": "tag-row",
        "energy": "machine",
        "commissioning": "com-target",
        "config": "config-text",
    }
    browser.wait(lambda: browser.js("return document.querySelector('main').dataset.page") == page,
                 10, f"the {page} page")  # fmt: skip
    browser.wait(lambda: browser.find(marks[page]), 15, f"the {page} page's content")
    if page == "config":
        browser.wait(lambda: browser.find("config-text")[0].text.strip(), 10, "the config text")


def _tag_value(browser: Browser, tag: str) -> Any:
    cells = browser.driver.find_elements(
        "css selector", f'[data-testid="tag-row"][data-tag="{tag}"] [data-testid="tag-value"]'
    )
    return cells[0] if cells and cells[0].text.strip() not in ("", "–") else None


def _row_state(browser: Browser, device: str) -> str | None:
    rows = browser.find("device-row", device=device)
    return rows[0].get_attribute("data-state") if rows else None


def _pixels_like(browser: Browser, canvas: object, colour: str) -> int:
    """How many of a canvas's pixels are (nearly) ``colour`` ("rgb(r, g, b)")."""
    count: int = browser.js(
        "const [canvas, colour] = arguments;"
        "const [r, g, b] = colour.match(/\\d+/g).map(Number);"
        "const data = canvas.getContext('2d')"
        "  .getImageData(0, 0, canvas.width, canvas.height).data;"
        "let n = 0;"
        "for (let i = 0; i < data.length; i += 4) {"
        "  if (data[i + 3] > 160 && Math.abs(data[i] - r) + Math.abs(data[i + 1] - g)"
        "      + Math.abs(data[i + 2] - b) < 90) n++;"
        "}"
        "return n;",
        canvas,
        colour,
    )
    return count


#: The visible text of the page, each piece with whether it sits in translate="no" (data).
_VISIBLE_TEXT = """
const out = [];
const data = (node) => !!node.closest('[translate="no"], [data-testid="config-text"],'
                                      + ' [data-testid="log-row"]');
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const parent = n.parentElement;
  const text = n.nodeValue.trim();
  if (!text || !parent) continue;
  if (parent.closest('option')) {
    if (parent.closest('select').checkVisibility()) out.push([text, data(parent)]);
  } else if (parent.checkVisibility({visibilityProperty: true})) out.push([text, data(parent)]);
}
for (const node of document.querySelectorAll('[placeholder], [title]')) {
  if (!node.checkVisibility({visibilityProperty: true})) continue;
  for (const name of ['placeholder', 'title']) {
    const text = (node.getAttribute(name) || '').trim();
    if (text) out.push([text, data(node)]);
  }
}
out.push([document.title, false]);
return out;
"""


#: Every word of the data the server sent (device values and sources, event texts, the
#: config's YAML, log lines): words the page shows as data, not as its own labels.
_DATA_WORDS = """
const paths = ['/console/api/plant', '/console/api/energy', '/console/api/config'];
const plant = await (await fetch(paths[0])).json();
for (const device of plant.devices) paths.push('/console/api/device/' + device.name);
const words = new Set();
const walk = (v) => {
  if (typeof v === 'string') {
    for (const w of v.split(/[^A-Za-z0-9_.\\-]+/)) words.add(w.replace(/^[.-]+|[.-]+$/g, ''));
  }
  else if (v && typeof v === 'object') Object.values(v).forEach(walk);
};
for (const path of paths) walk(await (await fetch(path)).json());
return [...words];
"""


def _english(browser: Browser, names: set[str], *, signed_in: bool = True) -> set[str]:
    """English words on the page that are neither allowed, nor plant names, nor (inside
    translate="no") the data the server sent."""
    served = set(browser.js(f"return (async () => {{ {_DATA_WORDS} }})()")) if signed_in else set()
    left: set[str] = set()
    for text, is_data in browser.js(_VISIBLE_TEXT):
        for word in _words(VERBATIM.sub(" ", text)):
            if word in ALLOWED_ENGLISH or word in names or TECHNICAL.fullmatch(word):
                continue
            if is_data and word in served:
                continue
            left.add(f"{word} (data)" if is_data else word)
    return left


def _plant_names(console: ConsoleThread) -> set[str]:
    """The plant file's own names: plant, devices, tags, units, enum labels, users."""
    config = console.agent.config
    texts = [config.plant.name, *(sink.name for sink in config.sinks)]
    if config.service.console is not None:
        texts += [user.name for user in config.service.console.users]
    for device in config.devices:
        info = device.describe()
        texts += [info.name, info.device_type, info.template]
        for tag in info.tags.values():
            texts += [tag.name, tag.unit or "", *(tag.enum or {}).values()]
    return {word for text in texts for word in [text, *_words(text)] if word}

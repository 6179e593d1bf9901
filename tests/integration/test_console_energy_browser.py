"""The energy page's energy-management figures in a real browser, on the demo plant (issue 16).

The demo plant's line meter has a demand limit low enough that the guard passes it in the
first minute, an example time-of-use tariff and a gas meter; its oven has a baseline fitted
from a CSV at start. On a running agent (its simulators and console on free loopback ports,
no login on loopback) the energy page must show, in English and in Chinese, the cost so far
today with its currency, the guard's prediction against the limit, and a demand-limit event;
and the plant page the event while it runs.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import pytest

from tests.console_support import console_yaml
from tests.integration.browser import Browser, ConsoleThread, chromium, missing_browser

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser())),
]

#: The guard fires within the demo's first minute (configs/demo-plant.yaml: 12 kW, 20 s quiet).
FIRST_EVENT_S = 90


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleThread]:
    with ConsoleThread(tmp_path_factory.mktemp("console"), console_yaml()) as running:
        running.wait(lambda: all(s.counters.good_polls >= 3 for s in running.agent.sources), 30)
        # The report list is read on the console's worker thread, started by the first
        # request: one here, so that thread belongs to the module, not to a test.
        with urllib.request.urlopen(running.base + "/console/api/reports", timeout=10) as answer:
            assert answer.status == 200
        yield running


def _text(browser: Browser, testid: str, within: str = "") -> str:
    found = browser.js(
        "const [scope, id] = arguments;"
        "const root = scope ? document.querySelector(scope) : document;"
        'const node = root && root.querySelector(`[data-testid="${id}"]`);'
        "return node ? node.innerText : '';",
        within,
        testid,
    )
    return str(found)


def _energy_page_shows_cost_guard_and_event(browser: Browser) -> dict[str, str]:
    browser.open("/console/#/energy")
    line = '[data-testid="meter"][data-meter="line-meter"]'
    browser.wait(lambda: browser.find("meter", meter="line-meter"), 20, "the line meter's card")
    cost = browser.wait(
        lambda: (t := _text(browser, "cost-today", line)) and "CNY" in t and t,
        30,
        "the cost so far today, in CNY",
    )
    predicted = browser.wait(
        lambda: (t := _text(browser, "guard-predicted", line)) and "kW" in t and t,
        30,
        "the guard's prediction in kW",
    )
    event = browser.wait(
        lambda: browser.find("event-row", event="demand_limit"),
        FIRST_EVENT_S,
        "a demand-limit event",
    )[0]
    periods = browser.find("period-row")
    assert periods, "the cost by period table"
    return {
        "cost": cost,
        "predicted": predicted,
        "event": event.text,
        "guard": _text(browser, "guard", line),
        "periods": "\n".join(p.text for p in periods),
        "carriers": _text(browser, "carriers"),
        "savings": _text(browser, "savings"),
    }


def test_the_energy_page_in_english(console: ConsoleThread) -> None:
    with chromium("en") as browser:
        browser.base = console.base
        shown = _energy_page_shows_cost_guard_and_event(browser)
        assert re.search(r"Cost today\n[\d.,]+ CNY", shown["cost"]), shown["cost"]
        assert "example-cn-tou" in shown["cost"]
        assert re.search(r"Predicted block demand\n[\d.,]+ kW", shown["predicted"])
        assert "contracted limit 12.00 kW" in shown["predicted"]
        assert "Demand guard" in shown["guard"]
        assert "demand limit" in shown["event"]
        assert "critical" in shown["event"]
        assert "line-meter" in shown["event"]
        assert re.search(r"valley|flat|peak", shown["periods"])
        assert "natural gas" in shown["carriers"]
        assert "Nm3" in shown["carriers"]
        assert "oven-savings" in shown["savings"]
        assert "valid" in shown["savings"]
        # The plant page lists the event while it runs (the demo line stays above its limit:
        # an event ends with its block and the next starts 20 s into the next one).
        browser.open("/console/#/plant")
        box = browser.wait(
            lambda: next((b for b in browser.find("plant-events") if b.is_displayed()), None),
            FIRST_EVENT_S,
            "the running event on the plant page",
        )
        assert box is not None
        assert "demand limit" in box.text
        assert browser.problems() == []


def test_the_energy_page_in_chinese(console: ConsoleThread) -> None:
    with chromium("zh-CN") as browser:
        browser.base = console.base
        shown = _energy_page_shows_cost_guard_and_event(browser)
        assert re.search(r"今日电费\n[\d.,]+ CNY", shown["cost"]), shown["cost"]
        assert re.search(r"预测时段需量\n[\d.,]+ kW", shown["predicted"])
        assert "合同限值" in shown["predicted"]
        assert "需量监控" in shown["guard"]
        assert "需量超限" in shown["event"]
        assert "严重" in shown["event"]
        assert re.search("低谷|平段|高峰|尖峰|深谷", shown["periods"])
        assert "天然气" in shown["carriers"]
        assert "有效" in shown["savings"]
        assert browser.problems() == []

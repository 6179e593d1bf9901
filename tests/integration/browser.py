"""A real browser for the console's tests: Debian's chromium driven by chromedriver (Selenium 4),
and the agent on its own event loop in a thread beside it.

Why a thread for the agent: Selenium is synchronous and each call blocks until the browser
answers, so the agent's loop must keep running meanwhile. The tests stay plain synchronous
functions and the agent (``running_console``: the demo simulators, a Supervisor, the console)
runs in :class:`ConsoleThread`, which owns its loop and is joined when it stops, so it leaves
no thread behind. (The other way, async tests with each browser call in ``asyncio.to_thread``,
parks the calls in the loop's default executor, whose worker threads outlive the test until the
loop closes, and cannot share one console between tests.) The Supervisor installs signal
handlers, which only the main thread may; the thread's loop takes them as no-ops: the test
process's signals belong to pytest.

The browser never reaches beyond loopback: a dead proxy (``127.0.0.1:9``) for everything but
loopback (which Chromium always sends direct), no background networking, no component
updates, no pings, no DNS prefetch; a temporary profile, removed with the browser. Its console
log (``goog:loggingPrefs``) and every Content-Security-Policy violation (a listener installed
before any page script runs) are collected so a test can assert there were none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from edge_agent.service.agent import Agent
from simulators.serve import Plant
from tests.console_support import RunningConsole, running_console

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: Every console page's hash route (the login page is its own file).
PAGES = ("plant", "device", "energy", "commissioning", "config")

T = TypeVar("T")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None (CI installs both: .ci/run)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} not found: install Debian's {package} (apt-get install {package})"
    return None


def _options(lang: str, profile: Path, size: tuple[int, int]) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers; the pages are our own, on loopback
        "--disable-gpu",
        f"--window-size={size[0]},{size[1]}",
        f"--user-data-dir={profile}",
        # Nothing leaves the machine: no background requests, and a dead proxy for any
        # page that would reach beyond loopback (Chromium sends loopback direct).
        "--disable-background-networking",
        "--disable-component-update",
        "--no-pings",
        "--dns-prefetch-disable",
        "--proxy-server=127.0.0.1:9",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB
        "--hide-scrollbars",  # screenshots without a scrollbar's stripe
        f"--lang={lang}",
    ):
        options.add_argument(argument)
    # --lang sets the interface; the Accept-Language header comes from this preference.
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


#: Installed before any page script: records each CSP violation the page causes.
_CSP_LISTENER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " "
                    + e.sourceFile + ":" + e.lineNumber);
});
"""


@dataclass
class Browser:
    """One chromium, driven through chromedriver, with the helpers the console tests need."""

    driver: webdriver.Chrome
    lang: str
    base: str = ""

    def open(self, path: str) -> None:
        """Load ``path`` of the console under test: a full page load, also where only the
        hash differs from the page shown (which the browser would take as a same-page jump)."""
        if self.driver.current_url.split("#")[0] == (self.base + path).split("#")[0]:
            self.driver.get("about:blank")
        self.driver.get(self.base + path)
        self.wait(lambda: self.js("return document.readyState") == "complete", 10, "the page")

    def js(self, script: str, *args: object) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, condition: Callable[[], T], within: float, what: str) -> T:
        """Poll ``condition`` until it is truthy; its value, or AssertionError naming ``what``."""
        deadline = time.monotonic() + within
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within} s waiting for {what}")
            time.sleep(0.1)

    def find(self, testid: str, **data: str) -> list[WebElement]:
        """Elements with ``data-testid`` (and the given ``data-*`` values)."""
        selector = f'[data-testid="{testid}"]' + "".join(
            f'[data-{name}="{value}"]' for name, value in data.items()
        )
        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def console_log(self) -> list[dict[str, Any]]:
        """The browser console's entries since the last call (chromedriver empties it)."""
        # get_log is untyped in Selenium; it answers a list of dicts (level, message, source).
        return list(self.driver.get_log("browser"))  # type: ignore[no-untyped-call]

    def problems(self) -> list[str]:
        """Console errors (SEVERE) and CSP violations since the last call: none is the norm."""
        errors = [
            f"console {e['level']}: {e['message']}"
            for e in self.console_log()
            if e["level"] == "SEVERE"
        ]
        violations = self.js("const v = window.__csp || []; window.__csp = []; return v;")
        return errors + [f"CSP violation: {v}" for v in violations]

    def clear_cookies(self) -> None:
        self.driver.delete_all_cookies()


@contextlib.contextmanager
def chromium(lang: str = "en", size: tuple[int, int] = (1366, 900)) -> Iterator[Browser]:
    """A headless chromium in ``lang`` (``en`` or ``zh-CN``); quit, and checked gone, after."""
    profile = Path(tempfile.mkdtemp(prefix="edge-agent-chromium-"))
    try:
        driver = webdriver.Chrome(
            options=_options(lang, profile, size),
            service=Service(str(CHROMEDRIVER), log_output=os.devnull),
        )
        try:
            driver.set_page_load_timeout(20)
            driver.execute_cdp_cmd(
                "Page.addScriptToEvaluateOnNewDocument", {"source": _CSP_LISTENER}
            )
            yield Browser(driver, lang)
        finally:
            driver.quit()
            _wait_gone(profile)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _wait_gone(profile: Path, within: float = 10.0) -> None:
    """Chromium's helpers (renderer, GPU, zygote) are not our children once chromedriver is
    gone: find them by their profile directory and wait for them to exit."""
    deadline = time.monotonic() + within
    while left := _processes_using(profile):
        if time.monotonic() > deadline:
            raise AssertionError(f"chromium processes left running: {left}")
        time.sleep(0.05)


def _processes_using(profile: Path) -> list[int]:
    mark = str(profile).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


class _NoSignalsLoop(asyncio.SelectorEventLoop):
    """An event loop for a thread: signal handlers are the main thread's (pytest's) business."""

    # typeshed spells the callback with a TypeVarTuple; any callable is ignored here anyway.
    def add_signal_handler(  # type: ignore[override]
        self, sig: int, callback: Callable[..., object], *args: Any
    ) -> None:
        pass

    def remove_signal_handler(self, sig: int) -> bool:
        return False


@dataclass
class ConsoleThread:
    """``running_console`` on its own event loop in a thread, for synchronous browser tests."""

    tmp_path: Path
    extra_yaml: str = ""
    #: Text replacements in the demo plant file (see ``running_console``).
    replace: dict[str, str] = field(default_factory=dict)
    console: RunningConsole | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _failure: BaseException | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> ConsoleThread:
        self._thread = threading.Thread(target=self._run, name="console-agent")
        self._thread.start()
        if not self._ready.wait(60):
            raise AssertionError("the console did not start within 60 s")
        if self._failure is not None or self.console is None:
            self._thread.join()
            raise AssertionError("the console did not start") from self._failure
        return self

    @property
    def running(self) -> RunningConsole:
        assert self.console is not None, "the console is not running"
        return self.console

    @property
    def base(self) -> str:
        return self.running.base

    @property
    def agent(self) -> Agent:
        return self.running.agent

    @property
    def plant(self) -> Plant:
        return self.running.plant

    def wait(self, condition: Callable[[], bool], within: float) -> None:
        """Until ``condition`` (read from this thread: counters, states) holds."""
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"the console: timed out after {within} s")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        assert self._thread is not None
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the console's thread did not stop"
        if self._failure is not None and exc[0] is None:
            raise AssertionError("the console failed") from self._failure

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the agent's loop (the simulators are not thread-safe)."""
        assert self._loop is not None

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=_NoSignalsLoop) as runner:
                runner.run(self._main())
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            self._failure = error
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_console(self.tmp_path, self.extra_yaml, replace=self.replace) as console:
            self.console = console
            self._ready.set()
            await self._stop.wait()

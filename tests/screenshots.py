"""Screenshots of the web console for the README: ``python -m tests.screenshots``.

Starts the demo plant's simulators and an agent with its console on free loopback ports
(never the demo's fixed ports), lets a minute of data come in so the sparklines and charts
have points, then saves docs/images/console-<page>-<lang>.png for every page in English and
Chinese at 1366x900, and docs/images/console-plant-tablet-<lang>.png at 768x1024. Needs
Debian's chromium and chromium-driver (as the browser tests) and a CJK font
(fonts-wqy-microhei) so the Chinese pages show glyphs, not boxes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.console_support import PASSWORD, PASSWORD_HASH, console_yaml
from tests.integration.browser import Browser, ConsoleThread, chromium, missing_browser
from tests.servers import Mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
#: An operator allowed to commission, so the commissioning page is the real one.
USERS = console_yaml(
    "{users: [{name: operator, password_hash: '" + PASSWORD_HASH + "', commissioning: true}],"
    " commissioning: true}"
)
#: Page name in the file -> the route shown, and what marks it drawn.
SHOTS = {
    "plant": ("#/plant", "device-row"),
    "device": ("#/device/line-meter", "tag-row"),
    "energy": ("#/energy", "machine"),
    "commissioning": ("#/commissioning", "com-target"),
    "config": ("#/config", "config-text"),
}
LAPTOP = (1366, 900)
TABLET = (768, 1024)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds of data before the first shot"
    )
    args = parser.parse_args(argv)
    if reason := missing_browser():
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-agent-shots-") as state:
        # A real broker, so the sinks and the outbox show as they do in a plant.
        broker = Mosquitto(port=free_port(), workdir=Path(state) / "mosquitto")
        broker.start()
        try:
            sink = (
                "sinks:\n"
                f"  - {{name: plant-broker, type: mqtt, host: 127.0.0.1, port: {broker.port}}}\n"
            )
            return _shoot(args, Path(state), sink + USERS)
        finally:
            broker.stop()


def _shoot(args: argparse.Namespace, state: Path, extra_yaml: str) -> int:
    with ConsoleThread(state, extra_yaml) as console:
        print(f"console at {console.base}/console/; {args.wait:.0f} s of data first")
        time.sleep(args.wait)
        for lang, suffix in (("en", "en"), ("zh-CN", "zh")):
            with chromium(lang, LAPTOP) as browser:
                browser.base = console.base
                _sign_in(browser, LAPTOP)
                for page, (route, mark) in SHOTS.items():
                    _show(browser, route, mark)
                    if page == "device":
                        _open_chart(browser, "power_active")
                    _save(browser, args.out / f"console-{page}-{suffix}.png")
            with chromium(lang, TABLET) as browser:
                browser.base = console.base
                _sign_in(browser, TABLET)
                _show(browser, "#/plant", "device-row")
                _save(browser, args.out / f"console-plant-tablet-{suffix}.png")
    return 0


def _sign_in(browser: Browser, size: tuple[int, int]) -> None:
    browser.open("/console/login")
    # The window's size counts the (headless) browser's own frame: grow it by that much.
    viewport = browser.js("return [window.innerWidth, window.innerHeight]")
    window = browser.driver.get_window_size()
    browser.driver.set_window_size(
        window["width"] + size[0] - viewport[0], window["height"] + size[1] - viewport[1]
    )
    viewport = browser.js("return [window.innerWidth, window.innerHeight]")
    if tuple(viewport) != size:
        raise SystemExit(f"the browser's viewport is {viewport}, not {size}")
    browser.wait(lambda: browser.find("login-user"), 10, "the login form")
    browser.find("login-user")[0].send_keys("operator")
    browser.find("login-password")[0].send_keys(PASSWORD)
    browser.find("login-submit")[0].click()
    browser.wait(lambda: browser.find("device-row"), 15, "the plant page")


def _show(browser: Browser, route: str, mark: str) -> None:
    browser.open(f"/console/{route}")
    browser.wait(lambda: browser.find(mark), 15, f"{route} drawn")
    time.sleep(2.5)  # two live updates: values, sparklines and the stream's state settled


def _open_chart(browser: Browser, tag: str) -> None:
    browser.find("tag-row", tag=tag)[0].click()
    browser.wait(lambda: browser.find("tag-chart"), 10, "the chart")
    browser.js("window.scrollTo(0, 0)")
    time.sleep(1.0)


def _save(browser: Browser, path: Path) -> None:
    problems = browser.problems()
    if problems:
        raise SystemExit(f"{path.name}: the page reported problems: {problems}")
    browser.driver.save_screenshot(str(path))
    print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    sys.exit(main())

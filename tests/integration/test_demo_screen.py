"""``edge-agent demo`` on a real terminal: tmux at 80x24 (an SSH session) and 160x50.

The demo runs in a detached tmux session of its own server (its own socket), the
screen is read with ``capture-pane``; the server and the demo are gone when the test
ends. What must be on one screen: every device with its state, the KPIs, the OEE note
and the compressor meter's rollover note, none of them cut or wrapped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)"),
]

ROOT = Path(__file__).resolve().parents[2]
DEVICES = ("line-meter", "cnc-1", "press-1", "compressor-1", "compressor-meter", "dryer-gas")
HEADLINES = (
    "edge-agent demo: plant demo-plant",
    "MQTT publishing is off (--mqtt HOST:PORT publishes); values shown here only.",
    # The press (5 s cycle) may have made its first part by the time all is on screen,
    # when it runs at start; the CNC (95 s) has not.
    "OEE: waiting for the first part (cnc-1",
    "compressor-meter: counter rolls over in ~",
    "baseline oven-savings: R2 0.99",  # issue 16: the baseline, fitted at start
)
#: The demo runs this long at most, should the test fail to stop it.
DEMO_SECONDS = 60


class Tmux:
    """A tmux server of our own (``-L``), so that killing it touches nothing else."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout

    def screen(self) -> list[str]:
        return self("capture-pane", "-p").splitlines()


@contextlib.contextmanager
def demo_in_tmux(columns: int, lines: int) -> Iterator[Tmux]:
    tmux = Tmux(f"edge-agent-demo-test-{os.getpid()}-{columns}x{lines}")
    command = (
        # COLUMNS / LINES from the test's environment would override the terminal's size.
        f"cd {ROOT} && exec env -u COLUMNS -u LINES PYTHONPATH={ROOT} "
        f"{sys.executable} -m edge_agent demo --duration {DEMO_SECONDS}"
    )
    # remain-on-exit keeps a failed demo's last words on the screen for the assertion text.
    tmux("new-session", "-d", "-x", str(columns), "-y", str(lines), command)
    pid = int(tmux("display-message", "-p", "#{pane_pid}").strip())
    try:
        tmux("set-option", "-t", "0", "remain-on-exit", "on")
        yield tmux
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            tmux("kill-server")
        _wait_gone(pid)


def _wait_gone(pid: int) -> None:
    """The demo got SIGHUP with the server; wait until it has freed the simulator ports."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)


def _until_headlines(tmux: Tmux) -> list[str]:
    deadline = time.monotonic() + 45
    screen: list[str] = []
    while time.monotonic() < deadline:
        screen = tmux.screen()
        text = "\n".join(screen)
        if (
            all(h in text for h in HEADLINES)
            and all(f"  {d} " in text for d in DEVICES)
            and all(_meter_shows_energy(screen, meter) for meter in METERS)
        ):
            return screen
        time.sleep(0.3)
    raise AssertionError("the headline never showed; the screen:\n" + "\n".join(screen))


#: Meters whose row shows today's energy and demand once their first reads are in (on a
#: loaded machine the headlines may come first).
METERS = ("line-meter", "compressor-meter")


def _meter_shows_energy(screen: list[str], meter: str) -> bool:
    rows = [line for line in screen if line.startswith(f"  {meter} ")]
    return bool(rows) and " kWh " in rows[0] and rows[0].rstrip().endswith("kW")


def _device_row(screen: list[str], device: str) -> str:
    """The device's row in the KPI table (the first table; a wide screen lists it again)."""
    rows = [line for line in screen if line.startswith(f"  {device} ")]
    assert rows, f"{device} is not on the screen"
    return rows[0]


@pytest.mark.parametrize(("columns", "lines"), [(80, 24), (160, 50)])
def test_demo_shows_its_headline_on_one_screen(columns: int, lines: int) -> None:
    with demo_in_tmux(columns, lines) as tmux:
        screen = _until_headlines(tmux)
    shown = "\n".join(screen)
    # The first line printed is still on screen: nothing scrolled away.
    assert screen[0].startswith("MQTT publishing is off"), shown
    assert all(len(line) <= columns for line in screen)
    assert "…" not in shown, f"something was cut:\n{shown}"
    header = next(line for line in screen if line.lstrip().startswith("device "))
    for column in ("state", "energy today", "demand", "util.", "OEE"):
        assert column in header, shown
    for device in DEVICES:
        row = _device_row(screen, device)
        assert "online" in row, shown
    assert _device_row(screen, "cnc-1").split()[-1] == "waiting", shown
    press = _device_row(screen, "press-1").split()[-1]
    assert press == "waiting" or press.endswith("%"), shown
    meters = [_device_row(screen, d) for d in METERS]
    assert all(" kWh " in row and row.rstrip().endswith("kW") for row in meters), shown
    wide = columns >= 120 and lines >= 40
    assert ("latest values" in shown) is wide, shown
    if wide:
        assert "voltage_l1=" in shown, shown
        assert "energy_import=" in shown, shown


async def test_the_rollover_note_follows_the_compressor_meter_counter(tmp_path: Path) -> None:
    """The counter set a few ticks before 2**32: the note announces, then reports, the rollover."""
    import asyncio

    from edge_agent.demo_screen import DemoScreen
    from edge_agent.service.agent import Agent
    from simulators.profile import parse_profile
    from simulators.serve import serve_profile
    from tests.plant import DEMO_PORTS, PROFILE_FILE, demo_config
    from tests.service_support import wait_for

    text = PROFILE_FILE.read_text()
    assert "initial_counter: 4294967276" in text
    text = text.replace("initial_counter: 4294967276", "initial_counter: 4294967293")
    for port in DEMO_PORTS.values():
        text = text.replace(f"port: {port}", "port: 0")
    async with serve_profile(parse_profile(text, str(PROFILE_FILE))) as plant:
        config = demo_config({n: plant.port(n) for n in plant.servers}, tmp_path)
        agent = Agent(config)
        screen = DemoScreen(agent, {})
        seen: list[str] = []

        def note() -> bool:
            seen.extend(line for line in screen.notes() if line.startswith("compressor-meter"))
            return bool(seen) and "rolled over just now" in seen[-1]

        task = asyncio.create_task(agent.run(), name="agent")
        try:
            await wait_for(note, 60, "the rollover note")
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 30)
    assert seen[-1] == "compressor-meter: counter rolled over just now: handled"
    before = [line for line in seen if "rolls over in ~" in line]
    assert before, seen  # announced while the demand was known
    assert before[0].endswith(" min: handled"), before
    # Energy today went on through the rollover: no jump of 2**32 x 0.01 kWh, no reset.
    (row,) = (r for r in screen.device_rows() if r[0] == "compressor-meter")
    energy = float(row[2].split()[0].replace(",", ""))
    assert 0 < energy < 1, row

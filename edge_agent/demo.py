"""``edge-agent demo``: the bundled simulators plus the agent, with live values in the terminal.

Works with nothing else installed: without ``--mqtt`` there is no sink and one line
says so; with ``--mqtt HOST:PORT`` the same values are published there too. With
``--sparkplug HOST:PORT`` (alone or beside ``--mqtt``) the plant is published as a
Sparkplug B edge node: group id and edge node id are the plant's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.bundled import DEMO_CONSOLE_PORT, configs_dir
from edge_agent.config import MqttSinkConfig, PlantConfig, SparkplugSinkConfig
from edge_agent.config.console import ConsoleConfig
from edge_agent.config.loader import Adjust, load_config
from edge_agent.config.service import HealthConfig
from edge_agent.demo_screen import WAITING_FOR_PART, DemoScreen, tag_texts
from edge_agent.errors import ConfigError
from edge_agent.logs import configure_logging
from edge_agent.redaction import register_secrets, secret_values
from edge_agent.service.agent import Agent
from edge_agent.service.supervisor import Supervisor

if TYPE_CHECKING:
    from rich.console import Group

#: How many values per device the plain (non-terminal) view shows.
VALUES_SHOWN = 20


def demo_config_path() -> Path:
    """The bundled demo plant, in a source checkout or an installed package alike."""
    return configs_dir() / "demo-plant.yaml"


def _host_port(option: str, value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError([f"{option} {value!r}: expected HOST:PORT, e.g. 127.0.0.1:1883"])
    return host, int(port)


def _console_listener(port: int) -> Adjust:
    """A copy with a console (its users) but no listener for it gets the demo's: on
    loopback, on the console port. Added before validation, which refuses a console
    without one."""

    def adjust(data: dict[str, Any]) -> None:
        service = data.get("service")
        if isinstance(service, dict) and service.get("console") is not None:
            service.setdefault("health", {"listen": "127.0.0.1", "port": port})

    return adjust


def _demo_config(
    config_path: Path | None,
    mqtt: str | None,
    state_dir: Path,
    console_port: int = 0,
    sparkplug: str | None = None,
) -> PlantConfig:
    path = config_path or demo_config_path()
    # The shell's variables (a copy's ${COMMAND_KEY}), the demo's own state directory.
    env = {**os.environ, "EDGE_AGENT_STATE": str(state_dir)}
    adjust = _console_listener(console_port) if console_port else None
    config = load_config(path, env=env, adjust=adjust)
    if console_port and config.service.console is None:
        # On loopback only, without users: a look at the demo plant, nothing more.
        service = config.service.model_copy(
            update={
                "health": HealthConfig(listen="127.0.0.1", port=console_port),
                "console": ConsoleConfig(),
            }
        )
        config = config.model_copy(update={"service": service})
    sinks = list(config.sinks)
    if mqtt is not None:
        host, port = _host_port("--mqtt", mqtt)
        # It takes write commands too: the demo's writable setpoints (docs/WRITES.md).
        sinks.append(
            MqttSinkConfig(name="demo-mqtt", type="mqtt", host=host, port=port, commands=True)
        )
    if sparkplug is not None:
        host, port = _host_port("--sparkplug", sparkplug)
        name = config.plant.name
        sinks.append(
            SparkplugSinkConfig(
                name="demo-sparkplug",
                type="sparkplug",
                host=host,
                port=port,
                group_id=name,
                edge_node_id=name,
            )
        )
    if sinks == config.sinks:
        return config
    return config.model_copy(update={"sinks": sinks})


#: Lines a terminal needs for the live screen to leave room for the write and audit
#: command lines (two long lines that wrap); in a smaller one the screen comes first.
HINT_LINES = 40


def _room_for_hints() -> bool:
    """The write/audit command lines fit: output is not a terminal (a log keeps every
    line), or the terminal is tall enough that the live screen still fits under them."""
    if not sys.stdout.isatty():
        return True
    return shutil.get_terminal_size().lines >= HINT_LINES


def _units(config: PlantConfig) -> dict[str, dict[str, str]]:
    return {d.name: {t.name: t.unit for g in d.poll_groups for t in g.tags} for d in config.devices}


def _value_texts(agent: Agent, device: str, units: dict[str, dict[str, str]]) -> list[str]:
    """``name=value unit``, with quality and reason when not good, for the first values."""
    latest = dict(list(agent.pipeline.latest(device).items())[:VALUES_SHOWN])
    return tag_texts(latest, units[device])


_KPI_COLUMNS = ("energy today", "demand", "utilization", "OEE")


def kpi_lines(screen: DemoScreen) -> list[str]:
    """One line per meter and machine with today's KPIs, then the screen's notes."""
    lines = []
    for name, _state, *cells in screen.device_rows():
        if not any(cells):
            continue  # not a metric device
        shown = zip(_KPI_COLUMNS, cells, strict=True)
        text = ", ".join(f"{column} {cell}" for column, cell in shown if cell)
        lines.append(f"kpi {name}: {text}".replace("OEE waiting", WAITING_FOR_PART))
    return lines + [n for n in screen.notes() if not n.startswith(("sink ", WAITING_FOR_PART))]


def snapshot_lines(
    agent: Agent,
    units: dict[str, dict[str, str]],
    *,
    stopped: bool = False,
    screen: DemoScreen | None = None,
) -> list[str]:
    """Plain-text view of every device: state and latest values (for logs and non-terminals).

    ``stopped``: the agent has stopped, so a sink is disconnected on purpose, not down.
    """
    lines = []
    for source in agent.sources:
        shown = ", ".join(_value_texts(agent, source.device, units))
        lines.append(f"{source.device:<17} {source.state.value:<10} {shown}")
    lines.extend(kpi_lines(screen or DemoScreen(agent, units)))
    for runner in agent.sinks:
        lines.append(
            f"sink {runner.sink.name}: "
            f"{'stopped' if stopped else 'connected' if runner.sink.connected else 'DOWN'}, "
            f"{runner.counters.batches_sent} batches sent, {len(runner.buffer)} buffered"
        )
    return lines


async def _show_plain(agent: Agent, units: dict[str, dict[str, str]], every: float) -> None:
    screen = DemoScreen(agent, units)  # remembers the counters between snapshots
    while True:
        await asyncio.sleep(every)
        print(time.strftime("%H:%M:%S"), flush=True)
        for line in snapshot_lines(agent, units, screen=screen):
            print("  " + line, flush=True)


async def _show_live(agent: Agent, units: dict[str, dict[str, str]]) -> None:
    from rich.console import Console
    from rich.live import Live  # lazy: only on a terminal

    screen = DemoScreen(agent, units)
    console = Console()

    def render() -> Group:
        return screen.render(console.width, console.height)

    with Live(render(), console=console, refresh_per_second=2, transient=False) as live:
        while True:
            await asyncio.sleep(0.5)
            live.update(render())


async def _demo(config: PlantConfig, duration: float | None) -> None:
    from simulators.profile import PROFILES_DIR, load_profile
    from simulators.serve import serve_profile  # lazy: simulators are optional

    profile = load_profile(PROFILES_DIR / "demo-plant.yaml")
    async with serve_profile(profile):
        agent = Agent(config)
        units = _units(config)
        display = (
            _show_live(agent, units) if sys.stdout.isatty() else _show_plain(agent, units, 5.0)
        )
        shower = asyncio.create_task(display, name="demo-display")
        try:
            await Supervisor(agent).run(duration=duration)
        finally:
            shower.cancel()
            await asyncio.wait([shower])
        print("final values:")
        for line in snapshot_lines(agent, units, stopped=True):
            print("  " + line)


def run_demo(
    config_path: Path | None,
    mqtt: str | None,
    duration: float | None,
    console_port: int = DEMO_CONSOLE_PORT,
    sparkplug: str | None = None,
) -> int:
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as state_dir:
        try:
            config = _demo_config(config_path, mqtt, Path(state_dir), console_port, sparkplug)
        except ConfigError as exc:
            print("\n".join(exc.problems), file=sys.stderr)
            return 2
        # Only warnings go to stderr: the live table owns the terminal. A copy's secrets
        # (from the environment) are known to the redaction first, as `run` does.
        register_secrets(secret_values(config))
        configure_logging("warning")
        if mqtt is None and sparkplug is None:
            print("MQTT publishing is off (--mqtt HOST:PORT publishes); values shown here only.")
        if mqtt is not None:
            print(f"publishing to MQTT broker {mqtt} on edge/{config.plant.name}/<device>/data")
            print(
                f"write commands on edge/{config.plant.name}/<device>/cmd, results on "
                ".../cmd/result (docs/WRITES.md)"
            )
        if _room_for_hints():
            path = config_path or demo_config_path()
            print(
                f"write a setpoint: EDGE_AGENT_STATE={state_dir} edge-agent write -c {path} "
                "compressor-1 pressure_setpoint 5.5"
            )
            print(f"audit log of writes: EDGE_AGENT_STATE={state_dir} edge-agent audit -c {path}")
        if sparkplug is not None:
            name = config.plant.name
            print(
                f"publishing as Sparkplug B edge node to {sparkplug}: group id {name!r} and "
                f"edge node id {name!r} (the plant name), spBv1.0/{name}/+/{name}/#"
            )
        print("simulated plant on 127.0.0.1:15020 and :15021; Ctrl-C to stop")
        health = config.service.health
        if config.service.console is not None and health is not None:
            scheme = "https" if health.tls is not None else "http"
            host = f"[{health.listen}]" if ":" in health.listen else health.listen
            print(f"web console: {scheme}://{host}:{health.port}/console/")
        from simulators.modbus_server import ServeError

        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_demo(config, duration))
        except ServeError as exc:
            # Typically a second demo, or `edge-agent simulate`, holding the fixed ports.
            print(
                f"error: {exc} (the demo needs 127.0.0.1:15020 and :15021; "
                "is another `edge-agent demo` or `edge-agent simulate` running?)",
                file=sys.stderr,
            )
            return 1
    return 0

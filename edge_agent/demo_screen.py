"""What ``edge-agent demo`` puts on the terminal: one screen with the plant's headline.

The first thing a new user sees must fit the usual SSH session to a gateway (80x24):
one row per device with its state and today's KPIs (energy, demand, utilization, OEE),
values rounded to what a person reads, and a few notes that explain what would
otherwise look like a fault (an OEE with no part made yet, a meter counter about to
roll over). A wider and taller terminal also gets each device's latest tag values.
Nothing here is on the data path: it reads the agent's latest values and live KPIs.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from edge_agent.metrics.live import LiveKpis, live_kpis
from edge_agent.model import Value

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

    from edge_agent.runtime.pipeline import LatestValue
    from edge_agent.service.agent import Agent

#: Terminals at least this wide and tall also show the devices' tag values.
WIDE_COLUMNS = 120
TALL_LINES = 40
#: A counter within this many hours of its rollover (at the current demand) gets a note.
ROLLOVER_NOTE_HOURS = 24.0
WAITING_FOR_PART = "OEE: waiting for the first part"


def round_number(value: float) -> str:
    """A number as a person reads it on a screen: a few significant digits, no float noise."""
    size = abs(value)
    if size >= 1000:
        return f"{value:,.1f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1 or value == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def value_text(value: Value, unit: str) -> str:
    """``227.8 V``, ``run``, ``True``; ``—`` when there is no value."""
    if value is None:
        return "—"
    if isinstance(value, float):
        text = round_number(value)
    elif isinstance(value, bool) or not isinstance(value, int):
        text = str(value)
    else:
        text = f"{value:,}" if abs(value) >= 100_000 else str(value)
    return f"{text} {unit}".strip()


def tag_texts(latest: dict[str, LatestValue], units: dict[str, str]) -> list[str]:
    """``name=value unit`` per tag, with the quality when it is not good."""
    texts = []
    for name, v in latest.items():
        text = f"{name}={value_text(v.value, units.get(name, ''))}"
        texts.append(text if v.quality == "good" else f"{text} ({v.quality}: {v.reason})")
    return texts


def oee_cell(row: LiveKpis, counts_parts: set[str]) -> str:
    """The OEE column of one row: a percentage, ``waiting``, or empty (no OEE to show)."""
    if row.kind != "machine" or row.name not in counts_parts:
        return ""
    # No part made today yet: OEE is 0 (or undefined) by arithmetic, not by performance.
    # Once parts are made a 0 is real (every part scrap, say) and must show as 0%.
    if not row.parts_made:
        return "waiting"
    return "—" if row.oee is None else f"{row.oee:.0%}"


@dataclass(slots=True)
class _Rollover:
    """What the screen remembers about one meter counter near its rollover."""

    last: float | None = None
    rolled_at: float | None = None


@dataclass(slots=True)
class DemoScreen:
    """Renders the agent's state; keeps only what a note needs to remember between frames."""

    agent: Agent
    units: dict[str, dict[str, str]]
    _rollovers: dict[str, _Rollover] = field(default_factory=dict)

    def kpis(self) -> dict[str, LiveKpis]:
        metrics = self.agent.metrics
        return {} if metrics is None else {row.name: row for row in live_kpis(metrics)}

    def counts_parts(self) -> set[str]:
        """Metric machines that count parts against an ideal cycle time (they have an OEE)."""
        metrics = self.agent.config.metrics
        if metrics is None:
            return set()
        return {
            m.name or m.device
            for m in metrics.machines
            if m.parts is not None and m.ideal_cycle_time is not None
        }

    def device_rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """(device, state, energy today, demand, utilization, OEE) per device, then totals."""
        kpis = self.kpis()
        parts = self.counts_parts()
        rows = []
        for source in self.agent.sources:
            row = kpis.pop(source.device, None)
            state = source.state.value
            if row is not None and row.state:
                state = f"{state}, {row.state}"
            rows.append((source.device, state, *self._kpi_cells(row, parts)))
        for row in kpis.values():  # metric units named apart from a device, the plant total
            rows.append((row.name, row.kind, *self._kpi_cells(row, parts)))
        return rows

    def _kpi_cells(self, row: LiveKpis | None, parts: set[str]) -> tuple[str, str, str, str]:
        if row is None:
            return "", "", "", ""
        energy = "—" if row.energy_today_kwh is None else f"{row.energy_today_kwh:,.2f} kWh"
        demand = "—" if row.demand_kw is None else f"{row.demand_kw:,.1f} kW"
        utilization = "" if row.utilization is None else f"{row.utilization:.0%}"
        return energy, demand, utilization, oee_cell(row, parts)

    def notes(self, now: float | None = None) -> list[str]:
        """Lines under the table: what a first look would otherwise take for a fault."""
        now = time.monotonic() if now is None else now
        kpis = self.kpis()
        waiting = [
            name
            for name in sorted(self.counts_parts())
            if name in kpis and oee_cell(kpis[name], {name}) == "waiting"
        ]
        lines = []
        if waiting:
            lines.append(f"{WAITING_FOR_PART} ({', '.join(waiting)})")
        lines.extend(self._rollover_notes(kpis, now))
        lines.extend(self._energy_notes())
        for runner in self.agent.sinks:
            state = "connected" if runner.sink.connected else "DOWN"
            lines.append(f"sink {runner.sink.name}: {state}, {len(runner.buffer)} batches buffered")
        return lines

    def _rollover_notes(self, kpis: dict[str, LiveKpis], now: float) -> list[str]:
        metrics = self.agent.metrics
        if metrics is None:
            return []
        lines = []
        for meter in metrics.meters:
            counter = meter.feed.spec.counter
            if counter is None or counter.modulus_ticks is None:
                continue
            latest = self.agent.pipeline.latest(meter.device).get(counter.tag)
            if latest is None or latest.quality != "good":
                continue
            if not isinstance(latest.value, int | float):
                continue
            value = float(latest.value)
            wrap = counter.modulus_ticks * counter.resolution  # in the tag's unit
            seen = self._rollovers.setdefault(meter.name, _Rollover())
            if seen.last is not None and value < seen.last - wrap / 2:
                seen.rolled_at = now
            seen.last = value
            if seen.rolled_at is not None:
                minutes = (now - seen.rolled_at) / 60
                ago = "just now" if minutes < 1 else f"{round(minutes)} min ago"
                lines.append(f"{meter.name}: counter rolled over {ago}: handled")
                continue
            row = kpis.get(meter.name)
            demand = row.demand_kw if row is not None else None
            left_kwh = (wrap - value) * counter.to_kwh
            if not demand or demand <= 0:
                continue
            hours = left_kwh / demand
            if hours <= ROLLOVER_NOTE_HOURS:
                lines.append(f"{meter.name}: counter rolls over in ~{_duration(hours)}: handled")
        return lines

    def _energy_notes(self) -> list[str]:
        """The demand guards' predictions, running idle and stalled-meter events, and the
        baselines' savings: issue 16's parts at a glance, each on one line of an 80-column
        terminal (the console's energy page shows them in full)."""
        metrics = self.agent.metrics
        if metrics is None:
            return []
        zone = ZoneInfo(metrics.timezone)
        lines = []
        for guard in metrics.watchers.guards:
            last = guard.last
            if last is None or last.predicted_kw is None:
                continue
            line = (
                f"demand guard {guard.meter.name}: {last.predicted_kw:,.1f} kW by "
                f"{_clock(last.block_end_ns, zone)}, limit {guard.spec.limit_kw:g} kW"
            )
            if guard.active is not None and last.shed_kw:
                line += f": ALARM, shed {last.shed_kw:,.1f} kW"
            lines.append(line)
        running = [
            *((f"idle energy {d.machine}", "idle", d.episode) for d in metrics.watchers.idle),
            *(
                (f"meter stalled {d.meter}", "no count", d.episode)
                for d in metrics.watchers.stalled
            ),
        ]
        for label, what, episode in running:
            if episode is not None and episode.active:
                since = _clock(episode.start_ns, zone)
                lines.append(f"{label}: {episode.last_kw:,.1f} kW, {what} since {since}")
        kgce = metrics.context.conversions.kgce
        for saving in metrics.savings:
            fit = saving.fitting.fit
            if fit is None:
                lines.append(f"baseline {saving.name}: not fitted yet")
            elif not fit.valid:
                lines.append(f"baseline {saving.name}: not used ({fit.reason})")
            else:
                lines.append(
                    f"baseline {saving.name}: R2 {fit.r2 or 0:.3f}, saved "
                    f"{saving.cumulative_kwh:,.2f} kWh = {kgce(saving.cumulative_kwh):,.3f} kgce"
                )
        return lines

    def render(self, width: int, height: int) -> Group:
        """The whole screen for a terminal of ``width`` x ``height``."""
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(
            title=f"edge-agent demo: plant {self.agent.config.plant.name}",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
            expand=False,
        )
        table.add_column("device", no_wrap=True, overflow="ellipsis", max_width=18)
        table.add_column("state", no_wrap=True, overflow="ellipsis", max_width=18)
        table.add_column("energy today", justify="right", no_wrap=True)
        table.add_column("demand", justify="right", no_wrap=True)
        table.add_column("util.", justify="right", no_wrap=True)
        table.add_column("OEE", justify="right", no_wrap=True)
        colours = {"online": "green", "degraded": "yellow", "offline": "red"}
        for device, state, *cells in self.device_rows():
            colour = colours.get(state.split(",")[0], "white")
            table.add_row(device, f"[{colour}]{state}[/]", *cells)
        parts: list[Table | Text] = [table]
        parts.extend(Text(line, no_wrap=True, overflow="ellipsis") for line in self.notes())
        if width >= WIDE_COLUMNS and height >= TALL_LINES:
            parts.append(self._values_table(width))
        return Group(*parts)

    def _values_table(self, width: int) -> Table:
        from rich import box
        from rich.table import Table

        table = Table(title="latest values", box=box.SIMPLE_HEAD, padding=(0, 1))
        names = [source.device for source in self.agent.sources]
        name_width = max((len(name) for name in names), default=6)
        table.add_column("device", no_wrap=True)
        table.add_column("tags", no_wrap=True, overflow="ellipsis")
        for name in names:
            texts = tag_texts(self.agent.pipeline.latest(name), self.units.get(name, {}))
            # Packed here, not by rich: rich would break "95.0 s" between value and unit.
            table.add_row(name, "\n".join(pack(texts, width - name_width - 6)))
        return table


def _clock(t_ns: int, zone: ZoneInfo) -> str:
    """``HH:MM`` of ``t_ns`` in the plant's time zone."""
    return dt.datetime.fromtimestamp(t_ns / 1e9, zone).strftime("%H:%M")


def _duration(hours: float) -> str:
    """``25 min``, ``15 h``: a rough time to an event."""
    minutes = max(1, round(hours * 60))
    return f"{minutes} min" if minutes < 120 else f"{round(hours)} h"


def pack(texts: list[str], width: int, gap: str = "  ") -> list[str]:
    """``texts`` joined by ``gap`` into lines of at most ``width`` (a longer text alone)."""
    lines: list[str] = []
    line = ""
    for text in texts:
        if line and len(line) + len(gap) + len(text) > width:
            lines.append(line)
            line = ""
        line = f"{line}{gap}{text}" if line else text
    if line:
        lines.append(line)
    return lines

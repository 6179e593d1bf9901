"""An energy meter as a metric unit: its energy windows, demand and daily peak."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.cost import tariff_batch
from edge_agent.metrics.demand import PeakTracker
from edge_agent.metrics.output import (
    CROSS_CHECK_NAMES,
    ENERGY_NAMES,
    cross_check_values,
    energy_and_demand_batches,
    energy_values,
)
from edge_agent.metrics.specs import Context, EnergySpec
from edge_agent.metrics.tariff import TariffCalendar
from edge_agent.metrics.tracks import OpenWindow, Stager, WindowTrack
from edge_agent.metrics.units.feed import EnergyFeed, Handler
from edge_agent.metrics.windows import WindowKind
from edge_agent.model import SampleBatch


class MeterUnit:
    """An energy meter: energy, demand and its daily peak, coal and CO2 equivalents."""

    def __init__(
        self,
        name: str,
        device: str,
        spec: EnergySpec,
        kinds: Sequence[WindowKind],
        events: list[tuple[str, dict[str, Any]]],
        tariff: TariffCalendar | None = None,
    ) -> None:
        self.name = name
        self.device = device
        self.tracks: dict[str, WindowTrack[EnergyAcc]] = {
            k.name: WindowTrack(k, EnergyAcc) for k in kinds
        }
        self.stager = Stager(list(self.tracks.values()), EnergyAcc, EnergyAcc.merge)
        self.feed = EnergyFeed(
            spec, self.stager.spread, lambda acc: acc, events=events, unit=name, tariff=tariff
        )
        self.tariff = None if tariff is None else tariff.spec
        self.peaks = PeakTracker()
        self._names = ENERGY_NAMES + (CROSS_CHECK_NAMES if spec.counter and spec.power else ())
        #: Energy of the windows closed in the current close pass, by (kind, start): what
        #: plant totals add up (several windows of a kind close at once after a stall).
        self.just_closed: dict[tuple[str, int], EnergyAcc] = {}

    def handlers(self) -> list[tuple[str, str, int, Handler]]:
        return self.feed.handlers(self.device)

    def close(self, kind: str, window: OpenWindow[EnergyAcc], ctx: Context) -> list[SampleBatch]:
        acc, length = window.acc, window.end_ns - window.start_ns
        self.just_closed[(kind, window.start_ns)] = acc
        kwh, values = energy_values(acc, length, ctx.conversions)
        coverage = acc.covered_ns / length
        if self.feed.spec.counter and self.feed.spec.power:
            values += cross_check_values(acc, length, ctx.min_coverage)
        out = energy_and_demand_batches(
            self.name, kind, window, self._names, values, kwh, coverage, self.peaks, ctx
        )
        calendar = self.feed.tariff
        if calendar is not None and kind in ctx.emitted:
            out.append(tariff_batch(self.name, kind, window, [(acc, calendar)], coverage, ctx))
        return out

    def state(self) -> dict[str, Any]:
        return {
            "feed": self.feed.state(),
            "tracks": {name: track.state() for name, track in self.tracks.items()},
            "peak": self.peaks.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.feed.restore(state.get("feed", {}))
        for name, windows in state.get("tracks", {}).items():
            if name in self.tracks:
                self.tracks[name].restore(windows, EnergyAcc.load)
        self.peaks.restore(state.get("peak"))

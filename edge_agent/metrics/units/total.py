"""The plant total as a metric unit: energy and demand summed over member meters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.cost import tariff_batch
from edge_agent.metrics.demand import PeakTracker
from edge_agent.metrics.output import ENERGY_NAMES, energy_and_demand_batches, energy_values
from edge_agent.metrics.specs import Context
from edge_agent.metrics.tariff import TariffCalendar
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.metrics.units.meter import MeterUnit
from edge_agent.model import SampleBatch


class PlantTotal:
    """Energy and demand of the whole plant: the sum of the member meters, window by window."""

    def __init__(self, name: str, members: Sequence[MeterUnit]) -> None:
        self.name = name
        self.members = tuple(members)
        self.peaks = PeakTracker()
        #: Cost is published only when every member has a tariff: a total with a meter
        #: left unpriced would show a cost that looks whole and is not.
        self.priced = bool(members) and all(m.tariff is not None for m in members)

    def close(self, kind: str, window: OpenWindow[Any], ctx: Context) -> list[SampleBatch]:
        total = EnergyAcc()
        length = window.end_ns - window.start_ns
        coverage = 1.0
        priced: list[tuple[EnergyAcc, TariffCalendar]] = []
        for member in self.members:
            acc = member.just_closed.get((kind, window.start_ns))
            if member.feed.tariff is not None:
                priced.append((acc or EnergyAcc(), member.feed.tariff))
            if acc is None:
                coverage = 0.0
                continue
            if acc.touched:
                total.touched = True
                total.kwh += acc.kwh
                total.late_kwh += acc.late_kwh
            coverage = min(coverage, acc.covered_ns / length)
        total.covered_ns = round(coverage * length)
        kwh, values = energy_values(total, length, ctx.conversions)
        out = energy_and_demand_batches(
            self.name, kind, window, ENERGY_NAMES, values, kwh, coverage, self.peaks, ctx
        )
        if self.priced and kind in ctx.emitted:
            out.append(tariff_batch(self.name, kind, window, priced, coverage, ctx))
        return out

    def state(self) -> dict[str, Any]:
        return {"peak": self.peaks.state()}

    def restore(self, state: dict[str, Any]) -> None:
        self.peaks.restore(state.get("peak"))

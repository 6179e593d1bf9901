"""A meter of another energy carrier (gas, steam, water ...) as a metric unit.

It reuses the electricity meter's machinery unchanged: the :class:`EnergyFeed` adds up
its counter (rollover, resets, jumps, gaps) or integrates its flow tag like power, into
the same :class:`EnergyAcc` window tracks with the same coverage and late handling; only
the unit differs (the counter's own unit instead of kWh, the flow's per hour instead of
kW). A closed window becomes one ``carrier`` batch: amount, kgce, kgCO2e when the meter has
a CO2 factor, coverage, late amount. No demand: that is an electricity figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.output import CARRIER_NAMES, metric_batch
from edge_agent.metrics.specs import Context, EnergySpec
from edge_agent.metrics.tracks import OpenWindow, Stager, WindowTrack
from edge_agent.metrics.units.feed import EnergyFeed, Handler
from edge_agent.metrics.windows import WindowKind
from edge_agent.model import SampleBatch

FAMILY = "carrier"


#: Batch attributes of the ``carrier`` family: the carrier and the unit of ``amount``.
CARRIER: Final = "carrier"
AMOUNT_UNIT: Final = "unit"


@dataclass(frozen=True, slots=True)
class CarrierSpec:
    """What a carrier meter needs besides its tags: the amount's unit and its factors."""

    carrier: str
    amount_unit: str
    kgce_per_unit: float
    kgco2e_per_unit: float | None = None


class CarrierUnit:
    """A non-electric meter: amount per window in its counter unit, kgce, kgCO2e."""

    def __init__(
        self,
        name: str,
        device: str,
        spec: EnergySpec,
        carrier: CarrierSpec,
        kinds: Sequence[WindowKind],
        events: list[tuple[str, dict[str, Any]]],
    ) -> None:
        self.name = name
        self.device = device
        self.carrier = carrier
        self.tracks: dict[str, WindowTrack[EnergyAcc]] = {
            k.name: WindowTrack(k, EnergyAcc) for k in kinds
        }
        self.stager = Stager(list(self.tracks.values()), EnergyAcc, EnergyAcc.merge)
        self.feed = EnergyFeed(spec, self.stager.spread, lambda acc: acc, events=events, unit=name)
        self._names: tuple[str, ...] = CARRIER_NAMES
        if carrier.kgco2e_per_unit is None:
            self._names = tuple(n for n in CARRIER_NAMES if n != "kgco2e")

    def handlers(self) -> list[tuple[str, str, int, Handler]]:
        return self.feed.handlers(self.device)

    def values(self, acc: EnergyAcc, length_ns: int) -> list[float | None]:
        """The batch's values in :attr:`_names` order: ``kgce = amount x kgce_per_unit``."""
        amount = acc.kwh if acc.touched else None  # the feed's "kwh" is the carrier's amount
        spec = self.carrier
        out: list[float | None] = [
            amount,
            None if amount is None else amount * spec.kgce_per_unit,
        ]
        if spec.kgco2e_per_unit is not None:
            out.append(None if amount is None else amount * spec.kgco2e_per_unit)
        out += [acc.covered_ns / length_ns, acc.late_kwh]
        return out

    def close(self, kind: str, window: OpenWindow[EnergyAcc], ctx: Context) -> list[SampleBatch]:
        if kind not in ctx.emitted:
            return []
        acc, length = window.acc, window.end_ns - window.start_ns
        batch = metric_batch(
            self.name,
            kind,
            window,
            FAMILY,
            self._names,
            self.values(acc, length),
            acc.covered_ns / length,
            ctx.min_coverage,
        )
        # What `amount` counts and in what unit, for whoever reads the batch alone (the
        # reports, a subscriber): the tariff family says its currency the same way.
        batch.attributes[CARRIER] = self.carrier.carrier
        batch.attributes[AMOUNT_UNIT] = self.carrier.amount_unit
        return [batch]

    def state(self) -> dict[str, Any]:
        return {
            "feed": self.feed.state(),
            "tracks": {name: track.state() for name, track in self.tracks.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.feed.restore(state.get("feed", {}))
        for name, windows in state.get("tracks", {}).items():
            if name in self.tracks:
                self.tracks[name].restore(windows, EnergyAcc.load)

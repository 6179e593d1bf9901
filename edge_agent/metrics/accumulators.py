"""Per-window accumulators: what a meter's or a machine's window has added up so far.

Plain slotted classes, merged once per staging segment (see
:class:`~edge_agent.metrics.tracks.Stager`) and saved as JSON for restarts.
"""

from __future__ import annotations

from typing import Any

from edge_agent.metrics.tariff import PERIODS

#: How many time-of-use periods a window keeps kWh for (critical peak ... deep valley).
PERIOD_COUNT = len(PERIODS)


class EnergyAcc:
    """Energy of one window: primary source (counter, else power), and power as cross-check.

    ``period_kwh``: the primary kWh by time-of-use period (in the order of
    :data:`~edge_agent.metrics.tariff.PERIODS`), filled only for a meter with a tariff;
    late energy is in the period it was used in.

    ``covered_ns``: time of the window with good data (readings within ``max_gap``);
    ``known_ns``: time whose primary energy is known, covered or bridged by a counter
    across a gap (the demand guard counts only the rest as unknown, see
    :mod:`~edge_agent.metrics.guard`). Late energy adds to neither.
    """

    __slots__ = (
        "alt_covered_ns",
        "alt_kwh",
        "covered_ns",
        "idle_kwh",
        "known_ns",
        "kwh",
        "late_kwh",
        "period_kwh",
        "touched",
    )

    def __init__(self) -> None:
        self.kwh = 0.0
        self.covered_ns = 0
        self.known_ns = 0
        self.touched = False
        self.late_kwh = 0.0
        self.alt_kwh = 0.0
        self.alt_covered_ns = 0
        self.idle_kwh = 0.0
        self.period_kwh = [0.0] * PERIOD_COUNT

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def merge(self, other: EnergyAcc) -> None:
        self.kwh += other.kwh
        self.covered_ns += other.covered_ns
        self.known_ns += other.known_ns
        self.touched = self.touched or other.touched
        self.late_kwh += other.late_kwh
        self.alt_kwh += other.alt_kwh
        self.alt_covered_ns += other.alt_covered_ns
        self.idle_kwh += other.idle_kwh
        mine, theirs = self.period_kwh, other.period_kwh
        for k in range(PERIOD_COUNT):
            mine[k] += theirs[k]

    @classmethod
    def load(cls, state: dict[str, Any]) -> EnergyAcc:
        """From :meth:`state`; a state saved before a field existed leaves it at zero
        (``known_ns`` at ``covered_ns``: bridged time was not kept apart then)."""
        acc = cls()
        for name in cls.__slots__:
            if name in state:
                setattr(acc, name, state[name])
        if "known_ns" not in state:
            acc.known_ns = acc.covered_ns
        periods = [float(v) for v in acc.period_kwh][:PERIOD_COUNT]
        acc.period_kwh = periods + [0.0] * (PERIOD_COUNT - len(periods))
        return acc


class MachineAcc:
    """Time per state (all, and planned), parts (all, and made in planned known time), energy."""

    __slots__ = ("energy", "parts", "parts_planned", "parts_touched", "planned_ns", "state_ns")

    def __init__(self) -> None:
        self.state_ns = [0, 0, 0, 0]
        self.planned_ns = [0, 0, 0, 0]
        self.parts = [0.0, 0.0, 0.0]
        self.parts_planned = [0.0, 0.0, 0.0]
        self.parts_touched = [False, False, False]
        self.energy = EnergyAcc()

    def state(self) -> dict[str, Any]:
        return {
            "state_ns": self.state_ns,
            "planned_ns": self.planned_ns,
            "parts": self.parts,
            "parts_planned": self.parts_planned,
            "parts_touched": self.parts_touched,
            "energy": self.energy.state(),
        }

    def merge(self, other: MachineAcc) -> None:
        for k in range(4):
            self.state_ns[k] += other.state_ns[k]
            self.planned_ns[k] += other.planned_ns[k]
        for k in range(3):
            self.parts[k] += other.parts[k]
            self.parts_planned[k] += other.parts_planned[k]
            self.parts_touched[k] = self.parts_touched[k] or other.parts_touched[k]
        self.energy.merge(other.energy)

    @classmethod
    def load(cls, state: dict[str, Any]) -> MachineAcc:
        acc = cls()
        acc.state_ns = [int(v) for v in state["state_ns"]]
        acc.planned_ns = [int(v) for v in state["planned_ns"]]
        acc.parts = [float(v) for v in state["parts"]]
        acc.parts_planned = [float(v) for v in state["parts_planned"]]
        acc.parts_touched = [bool(v) for v in state["parts_touched"]]
        acc.energy = EnergyAcc.load(state["energy"])
        return acc

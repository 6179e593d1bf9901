"""Which saved state still fits the plant file: the fingerprints of the metric units.

The processor saves each unit's open windows and counters with a fingerprint of the
settings they were made under. At start a unit whose fingerprint changed starts fresh
(its windows would mix two configurations); one whose fingerprint is the same carries
on where it stopped. So a fingerprint holds exactly what changes a window:

* a meter: its name, device, counter and power tags, ``max_power``, the window kinds,
  and the *name* of its tariff. Not the guard's settings, not the tariff's prices or
  calendar (they are applied when a window closes), and not the carrier's fields (an
  electricity meter leaves them at their defaults: left out, a state file saved before
  they existed still matches, so an upgrade loses nothing);
* a meter's *source* (device, counter, power, ``max_power``): when only the rest
  changed, its peak demand of the day and of the month is kept (the billing figure),
  though its windows start fresh;
* a machine: its settings, the window kinds and the shifts;
* a carrier meter: its settings and the window kinds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Final

from edge_agent.config.metrics import MachineConfig, MeterConfig, ShiftConfig

#: Settings of an electricity meter that change none of its windows.
NOT_IN_METER_FINGERPRINT: Final = {
    "demand_guard",
    "tariff",
    "carrier",
    "kgce_per_unit",
    "calorific_value",
    "kgco2e_per_unit",
}
SOURCE: Final = {"device", "counter", "power", "max_power"}


def fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def meter_fingerprint(meter: MeterConfig, kinds: Sequence[str], tariff: str | None) -> str:
    priced_by = () if tariff is None else (tariff,)
    dump = meter.model_dump(exclude=NOT_IN_METER_FINGERPRINT)
    return fingerprint("meter", dump, kinds, *priced_by)


def meter_source(meter: MeterConfig) -> str:
    return fingerprint("source", meter.model_dump(include=SOURCE))


def machine_fingerprint(
    machine: MachineConfig, kinds: Sequence[str], shifts: Sequence[ShiftConfig]
) -> str:
    return fingerprint("machine", machine.model_dump(), kinds, [s.model_dump() for s in shifts])


def carrier_fingerprint(meter: MeterConfig, kinds: Sequence[str]) -> str:
    return fingerprint("carrier", meter.model_dump(), kinds)

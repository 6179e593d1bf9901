"""Config of the demand guard (``meters[].demand_guard``) and of ``metrics.events``.

The formulas and the event schema are in docs/METRICS.md, "Demand guard and events".
Everything here is off unless configured: a meter without ``demand_guard`` and a
plant without ``metrics.events`` pay nothing for them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge_agent.config.base import Duration, Name, Strict

#: Length of a demand block (the ``15m`` window): the guard's durations must fit in it.
BLOCK_S = 900.0


class DemandGuardConfig(Strict):
    """Predicted end-of-block demand against a contracted (or a target) maximum demand."""

    limit_kw: float = Field(gt=0, description="Maximum demand (kW) of a 15-minute block.")
    kind: Literal["contracted", "target"] = Field(
        default="contracted",
        description="contracted: the utility's limit (events are critical); target: the "
        "plant's own lower aim (events are warnings).",
    )
    hysteresis: float = Field(
        default=0.02,
        ge=0,
        le=0.5,
        description="An event ends only when the prediction is this share below the limit "
        "(0.02: 2 %), so a prediction wobbling around the limit does not flap.",
    )
    min_hold: Duration = Field(
        default=30.0,
        ge=0,
        le=BLOCK_S,
        description="An event lasts at least this long (unless its block ends first).",
    )
    quiet_start: Duration = Field(
        default=60.0,
        ge=0,
        le=BLOCK_S,
        description="No event in the first seconds of a block, where one power reading "
        "decides the prediction, unless the block's energy alone already exceeds the limit.",
    )
    rate_window: Duration = Field(
        default=60.0,
        ge=5,
        le=BLOCK_S,
        description="A meter without a power tag: current power is the counter's rate over "
        "this long (a single step of the counter is too coarse).",
    )


class IdleEnergyRule(Strict):
    """A machine idle longer than ``after`` while drawing more than ``above_kw``."""

    after: Duration = Field(gt=0, le=86400, description="How long the idling must last.")
    above_kw: float = Field(ge=0, description="Power (kW) above which idling wastes energy.")


class IdleEnergyConfig(IdleEnergyRule):
    """The plant's idle-energy rule, with optional per-machine overrides."""

    machines: dict[Name, IdleEnergyRule] = Field(
        default_factory=dict,
        description="Per-machine rules (metric name -> {after, above_kw}) replacing the "
        "plant's rule for that machine.",
    )

    def rule_for(self, machine: str) -> IdleEnergyRule:
        return self.machines.get(machine, self)


class MeterStalledConfig(Strict):
    """A meter's counter that stopped counting while its power says energy flows."""

    after: Duration = Field(gt=0, le=86400, description="How long the counter must stand still.")
    min_kw: float = Field(gt=0, description="Power (kW) above which the counter must move.")


class EventsConfig(Strict):
    """Event detectors beyond the demand guard (docs/METRICS.md); none unless configured."""

    idle_energy: IdleEnergyConfig | None = None
    meter_stalled: MeterStalledConfig | None = None

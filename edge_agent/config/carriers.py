"""Carrier and grid-factor settings of the ``metrics:`` section (docs/METRICS.md).

* A meter's ``carrier`` (default electricity), the units its counter and flow tags may
  have, and its kgce coefficient: the reference value of
  :mod:`~edge_agent.metrics.carriers`, or the plant's own ``kgce_per_unit`` or
  ``calorific_value``. :func:`meter_problems` is the one rule set, used by the model's
  validator, so every error names the field it is about.
* ``grid_emission_factor``: a number, or ``{year, scope, region}`` looked up in the
  versioned table of :mod:`~edge_agent.metrics.emission_factors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from edge_agent.config.base import Strict
from edge_agent.metrics.carriers import CARRIERS, ELECTRICITY, UNIT_GROUPS, convert, group_of
from edge_agent.metrics.carriers import kgce_from_calorific_value as _kgce_from_mj
from edge_agent.metrics.emission_factors import (
    DEFAULT_GRID_FACTOR,
    REGIONS,
    GridFactor,
    Scope,
    lookup,
)

#: Keys of :data:`~edge_agent.metrics.carriers.CARRIERS` (a test keeps them equal).
CarrierName = Literal[
    "electricity",
    "natural_gas",
    "steam",
    "heat",
    "compressed_air",
    "water_new",
    "water_softened",
    "water_deaerated",
    "oxygen",
    "nitrogen",
    "diesel",
    "gasoline",
    "lpg",
    "fuel_oil",
    "raw_coal",
]
#: Every unit a counter may count in (which ones a carrier takes: its groups).
CounterUnit = Literal["Wh", "kWh", "MWh", "kg", "t", "MJ", "GJ", "m3", "Nm3"]
#: Every unit of a power or flow tag: electric power, or a counter unit per hour.
FlowUnit = Literal["W", "kW", "MW", "kg/h", "t/h", "MJ/h", "GJ/h", "m3/h", "Nm3/h"]

_POWER = {"W": "Wh", "kW": "kWh", "MW": "MWh"}


def per_hour_unit(flow_unit: str) -> str:
    """The amount unit a flow or power unit integrates to: kW -> kWh, m3/h -> m3."""
    return _POWER.get(flow_unit) or flow_unit.removesuffix("/h")


@dataclass(frozen=True)
class MeterUnits:
    """What a meter's amount is counted in and how its tags convert into it."""

    amount_unit: str
    counter_factor: float
    flow_factor: float
    kgce_per_unit: float
    kgce_source: str


def meter_units(
    carrier: str,
    counter_unit: str | None,
    flow_unit: str | None,
    kgce_per_unit: float | None,
    calorific_value: float | None,
) -> MeterUnits:
    """Units and coefficient of a non-electric meter; ValueError naming the field if unusable.

    The amount is counted in the counter's unit (or the flow's, without ``/h``); a flow
    tag converts into it inside one unit group (kg/h into t, never m3/h into t).
    """
    found = CARRIERS[carrier]
    if counter_unit is not None and counter_unit not in found.units:
        raise ValueError(
            f"counter.unit: {carrier} is counted in {', '.join(found.units)}, not {counter_unit}"
            + (
                " (a volume of a liquid fuel needs a density: count its mass)"
                if group_of(counter_unit) == "volume" and found.groups == ("mass",)
                else ""
            )
        )
    amount = counter_unit or per_hour_unit(flow_unit or "")
    flow_factor = 1.0
    if flow_unit is not None:
        flow_amount = per_hour_unit(flow_unit)
        if flow_amount not in found.units:
            raise ValueError(
                f"power.unit: a {carrier} flow is in "
                f"{', '.join(u + '/h' for u in found.units)}, not {flow_unit}"
            )
        if group_of(flow_amount) != group_of(amount):
            raise ValueError(
                f"power.unit: {flow_unit} does not convert into the counter's {amount} "
                "without a density or calorific value"
            )
        flow_factor = convert(flow_amount, amount)
    if kgce_per_unit is not None and calorific_value is not None:
        raise ValueError("give kgce_per_unit or calorific_value, not both")
    if kgce_per_unit is not None:
        return MeterUnits(amount, 1.0, flow_factor, kgce_per_unit, "configured kgce_per_unit")
    if calorific_value is not None:
        return MeterUnits(
            amount,
            1.0,
            flow_factor,
            _kgce_from_mj(calorific_value),
            f"configured calorific value {calorific_value:g} MJ/{amount} / 29.3076 MJ per kgce",
        )
    reference = found.reference(amount)
    if reference is None:
        raise ValueError(
            f"kgce_per_unit: {carrier} in {amount} has no reference coefficient that could be "
            "sourced (docs/METRICS.md, Energy carriers): set kgce_per_unit or calorific_value"
        )
    return MeterUnits(amount, 1.0, flow_factor, reference[0], reference[1])


def electric_problem(counter_unit: str | None, power_unit: str | None) -> str | None:
    """Why an electricity source's units do not fit, or ``None``."""
    electric = UNIT_GROUPS["electric"]
    if counter_unit is not None and counter_unit not in electric:
        return (
            f"counter.unit: electricity is counted in {', '.join(electric)}, not {counter_unit} "
            "(set carrier: for another energy carrier)"
        )
    if power_unit is not None and power_unit not in _POWER:
        return (
            f"power.unit: electric power is in {', '.join(_POWER)}, not {power_unit} "
            "(set carrier: for a flow of another energy carrier)"
        )
    return None


class GridFactorSelection(Strict):
    """A row of the versioned grid-factor table: ``{year, scope, region}``."""

    year: int = Field(description="Data year of the factor (2023: published by MEE and NBS).")
    scope: Scope = "national"
    region: str | None = Field(
        default=None, description=f"Regional grid: {', '.join(REGIONS)}; or the reporting key."
    )

    @model_validator(mode="after")
    def _exists(self) -> GridFactorSelection:
        try:
            lookup(self.year, self.scope, self.region)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        return self

    @property
    def factor(self) -> GridFactor:
        return lookup(self.year, self.scope, self.region)


#: The default selection: the latest national average of the table.
DEFAULT_GRID_SELECTION = GridFactorSelection(
    year=DEFAULT_GRID_FACTOR.year, scope=DEFAULT_GRID_FACTOR.scope
)


def grid_setting(value: Any) -> Any:
    """Validate a ``grid_emission_factor`` setting before the union sees it.

    One clear error for the kind the plant wrote (a number, or a table selection), named
    by the field alone, instead of one error per member of the union.
    """
    if isinstance(value, dict):
        try:
            return GridFactorSelection.model_validate(value)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                message = str(error["msg"]).removeprefix("Value error, ")
                problems.append(f"{where}: {message}" if where else message)
            raise ValueError("; ".join(problems)) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value <= 5:
            raise ValueError(
                f"{value:g} kgCO2e/kWh is not a grid emission factor (0 to 5); or give "
                "{year, scope, region} from the table"
            )
        return float(value)
    raise ValueError("give kgCO2e per kWh (a number) or {year, scope, region} from the table")


def grid_factor(setting: float | GridFactorSelection) -> tuple[float, str]:
    """``(kgCO2e per kWh, where it comes from)`` of the ``grid_emission_factor`` setting."""
    if isinstance(setting, GridFactorSelection):
        factor = setting.factor
        return factor.value, factor.describe()
    return setting, f"{setting:g} kgCO2e/kWh (the plant's own value)"


def carrier_of(name: str) -> str:
    """The carrier's label for messages (``natural gas (天然气)``)."""
    return CARRIERS[name].label if name in CARRIERS else name


__all__ = [
    "DEFAULT_GRID_SELECTION",
    "ELECTRICITY",
    "CarrierName",
    "CounterUnit",
    "FlowUnit",
    "GridFactorSelection",
    "MeterUnits",
    "carrier_of",
    "electric_problem",
    "grid_factor",
    "grid_setting",
    "meter_units",
    "per_hour_unit",
]

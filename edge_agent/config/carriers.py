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

import difflib
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, model_validator

from edge_agent.config.base import Strict
from edge_agent.metrics.carriers import (
    CARRIERS,
    ELECTRICITY,
    KJ_PER_KGCE,
    UNIT_GROUPS,
    convert,
    group_of,
)
from edge_agent.metrics.carriers import kgce_from_calorific_value as _kgce_from_mj
from edge_agent.metrics.emission_factors import (
    DEFAULT_GRID_FACTOR,
    GRID_FACTORS,
    REGIONS,
    SCOPES,
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
    reference = found.reference(amount)
    if reference is not None and (kgce_per_unit is not None or calorific_value is not None):
        problem = _implausible(carrier, amount, reference[0], kgce_per_unit, calorific_value)
        if problem is not None:
            raise ValueError(problem)
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
    if reference is None:
        raise ValueError(
            f"kgce_per_unit: {carrier} in {amount} has no reference coefficient that could be "
            "sourced (docs/METRICS.md, Energy carriers): set kgce_per_unit or calorific_value"
        )
    return MeterUnits(amount, 1.0, flow_factor, reference[0], reference[1])


#: Carriers whose coefficient is the energy spent making them (GB/T 2589 Table B.1,
#: working media): it depends on the plant's machines, so a plant's own value may lie
#: further from the table's than a fuel's calorific value can.
_WORKING_MEDIA = frozenset(
    ("compressed_air", "water_new", "water_softened", "water_deaerated", "oxygen", "nitrogen")
)
#: A plant's own coefficient lies within these multiples of the reference: a fuel's
#: calorific value varies by its source (natural gas 1.10-1.33 kgce/m3), a unit mistake
#: is a factor of 3.6 (kWh), 238.85 (kcal), 10 (tce per 10 000 units) or 1000.
_FUEL_BAND = (0.5, 2.0)
_MEDIUM_BAND = (0.2, 5.0)
#: (unit it may be in, MJ per that unit's one, how to say it) for a calorific value.
_MJ_GUESSES = (
    ("kcal", 1 / 238.8459, "1 MJ = 238.85 kcal"),
    ("kJ", 0.001, "1 MJ = 1000 kJ"),
    ("kWh", 3.6, "1 kWh = 3.6 MJ"),
    ("GJ", 1000.0, "1 GJ = 1000 MJ"),
)


def _implausible(
    carrier: str,
    amount: str,
    reference_kgce: float,
    kgce_per_unit: float | None,
    calorific_value: float | None,
) -> str | None:
    """Why the plant's own coefficient cannot be meant, with the unit it was probably
    written in; None if it is plausible (module docstring of :mod:`edge_agent.metrics.carriers`:
    a plant may know its gas better than the table, not 233 times better)."""
    low, high = _MEDIUM_BAND if carrier in _WORKING_MEDIA else _FUEL_BAND
    mj_per_kgce = KJ_PER_KGCE / 1000
    if calorific_value is not None:
        key, value, unit = "calorific_value", calorific_value, "MJ"
        reference = reference_kgce * mj_per_kgce
        guesses = [
            (f"{name}/{amount}", value * mj, f"{how}, so {value * mj:.4g} MJ/{amount}")
            for name, mj, how in _MJ_GUESSES
        ]
    else:
        assert kgce_per_unit is not None
        key, value, unit = "kgce_per_unit", kgce_per_unit, "kgce"
        reference = reference_kgce
        guesses = [
            (
                f"tce/{amount}",
                value * 1000,
                f"1 tce = 1000 kgce, so {value * 1000:.5g} kgce/{amount}",
            ),
            (
                f"tce per 10 000 {amount} (吨标准煤/万{amount}, as statistics print it)",
                value / 10,
                f"so {value / 10:.5g} kgce/{amount}",
            ),
            (
                f"a calorific value in MJ/{amount}",
                value / mj_per_kgce,
                f"write calorific_value: {value:g} (or kgce_per_unit: {value / mj_per_kgce:.5g})",
            ),
        ]
    if low * reference <= value <= high * reference:
        return None
    shown = f"{reference:.5g}" if unit == "kgce" else f"{reference:.4g}"
    text = (
        f"{key}: {value:g} {unit}/{amount} is {_num(value / reference)}x the GB/T 2589 "
        f"reference {shown} {unit}/{amount} of {carrier_of(carrier)}, outside the "
        f"plausible {low:g}x-{high:g}x ({_num(low * reference)}-{_num(high * reference)} "
        f"{unit}/{amount})"
    )
    fitting = [g for g in guesses if low * reference <= g[1] <= high * reference]
    if fitting:
        name, _, how = min(fitting, key=lambda g: abs(math.log(g[1] / reference)))
        text += f"; {value:g} looks like {name}: {how}"
    return text


def _num(value: float) -> str:
    """Three significant digits, never an exponent: 2000, 17.8, 0.607."""
    return f"{float(f'{value:.3g}'):g}" if value >= 1e-4 else f"{value:.3g}"


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


#: Other names a plant writes for a regional grid: its Chinese name and the pinyin of it
#: (华东 huadong), for the "did you mean" of a region the table does not spell so.
_REGION_PINYIN = {
    "huabei": "north",
    "dongbei": "northeast",
    "huadong": "east",
    "huazhong": "central",
    "xibei": "northwest",
    "nanfang": "south",
    "xinan": "southwest",
}


def _squeezed(text: str) -> str:
    """``'East China grid'`` -> ``'eastchina'``: the spelling-free form names are compared in."""
    text = text.lower().replace("电网", "").replace("区域", "")
    text = "".join(ch for ch in text if ch.isalnum())
    return text.removesuffix("grid") or text


def _region_names() -> dict[str, str]:
    names = {_squeezed(pinyin): key for pinyin, key in _REGION_PINYIN.items()}
    for key, label in REGIONS.items():
        chinese, english = label.split(" ", 1)
        names[_squeezed(chinese)] = key
        names[_squeezed(english.split("(")[0])] = key
        names[_squeezed(key)] = key
    return names


_REGION_NAMES = _region_names()


def region_hint(written: str) -> str | None:
    """``'did you mean east (华东 East China)?'`` for a region the table spells otherwise."""
    key = _REGION_NAMES.get(_squeezed(written))
    if key is None:
        close = difflib.get_close_matches(_squeezed(written), list(_REGION_NAMES), n=1, cutoff=0.7)
        key = _REGION_NAMES[close[0]] if close else None
    return None if key is None else f"did you mean {key} ({REGIONS[key]})?"


def _rows(year: int, scope: str) -> str:
    """``'2023 regional: north 0.6361, ... kgCO2/kWh'``: the rows of a year and scope."""
    rows = [f for f in GRID_FACTORS if (f.year, f.scope) == (year, scope)]
    values = ", ".join(f"{f.region} {f.value:.4f}" if f.region else f"{f.value:.4f}" for f in rows)
    return f"{year} {scope}: {values} kgCO2/kWh"


def _table() -> str:
    """What the table holds, one clause per scope: years with values, regions once."""
    clauses = []
    for scope in SCOPES:
        rows = [f for f in GRID_FACTORS if f.scope == scope]
        if not rows:
            continue
        if all(f.region is None for f in rows):
            clauses.append(f"{scope}: " + ", ".join(f"{f.year} {f.value:.4f}" for f in rows))
        elif scope == "regional":
            years = ", ".join(str(y) for y in sorted({f.year for f in rows}))
            regions = ", ".join(dict.fromkeys(str(f.region) for f in rows))
            clauses.append(f"regional: {years} (regions {regions})")
        else:
            clauses.append(
                f"{scope}: " + ", ".join(f"{f.year} {f.region} {f.value:.4f}" for f in rows)
            )
    return "the table has " + "; ".join(clauses)


def selection_problem(year: int, scope: str, region: str | None) -> str | None:
    """Why ``{year, scope, region}`` selects no row of the table, in the plant's words, with
    the rows it could have meant; ``None`` if it selects one."""
    try:
        lookup(year, scope, region)
    except KeyError:
        pass
    else:
        return None
    of_year = [f for f in GRID_FACTORS if (f.year, f.scope) == (year, scope)]
    if not of_year:
        where = f"{year} {scope}" + (f" {region}" if region else "")
        return f"no grid emission factor for {where}; {_table()}"
    if all(f.region is None for f in of_year):
        return f"scope {scope} has no region (drop region:, or give scope: regional)"
    if region is None:
        return f"scope {scope} needs a region; {_rows(year, scope)}"
    hint = region_hint(region) if scope == "regional" else None
    rows = _rows(year, scope)
    return f"no {year} {scope} factor for region {region!r}; " + (
        f"{hint} {rows}" if hint else rows
    )


def _scope_hint(written: object) -> str:
    """``'scope: 'regionl' is not one of ...; did you mean regional?'``"""
    allowed = ", ".join(get_args(Scope))
    text = f"scope: {written!r} is not one of {allowed}"
    if isinstance(written, str):
        close = difflib.get_close_matches(written.lower(), list(get_args(Scope)), n=1, cutoff=0.6)
        if close:
            text += f"; did you mean {close[0]}?"
    return text


class GridFactorSelection(Strict):
    """A row of the versioned grid-factor table: ``{year, scope, region}``."""

    year: int = Field(description="Data year of the factor (2023: published by MEE and NBS).")
    scope: Scope = "national"
    region: str | None = Field(
        default=None, description=f"Regional grid: {', '.join(REGIONS)}; or the reporting key."
    )

    @model_validator(mode="after")
    def _exists(self) -> GridFactorSelection:
        problem = selection_problem(self.year, self.scope, self.region)
        if problem is not None:
            raise ValueError(problem)
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
                if error["loc"] == ("scope",) and error["type"] == "literal_error":
                    problems.append(_scope_hint(error["input"]))
                    continue
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


#: What plants write for a carrier instead of its key (a word of its label is found
#: anyway: "natural gas", "天然气").
_CARRIER_WORDS = {
    "gas": "natural_gas",
    "ng": "natural_gas",
    "naturalgas": "natural_gas",
    "air": "compressed_air",
    "water": "water_new",
    "coal": "raw_coal",
    "oil": "fuel_oil",
    "petrol": "gasoline",
    "power": ELECTRICITY,
    "electric": ELECTRICITY,
    "n2": "nitrogen",
    "o2": "oxygen",
}


def carrier_hint(written: object) -> str | None:
    """``'did you mean natural_gas?'`` for a carrier written as a word, its label or a typo."""
    if not isinstance(written, str):
        return None
    squeezed = _squeezed(written)
    names = {_squeezed(word): key for word, key in _CARRIER_WORDS.items()}
    for key, found in CARRIERS.items():
        english, _, chinese = found.label.partition(" (")
        names[_squeezed(english)] = key
        names[_squeezed(chinese)] = key
        names[_squeezed(key)] = key
    close = [squeezed] if squeezed in names else []
    close = close or difflib.get_close_matches(squeezed, list(names), n=1, cutoff=0.7)
    return f"did you mean {names[close[0]]}?" if close else None


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
    "carrier_hint",
    "carrier_of",
    "electric_problem",
    "grid_factor",
    "grid_setting",
    "meter_units",
    "per_hour_unit",
    "region_hint",
    "selection_problem",
]

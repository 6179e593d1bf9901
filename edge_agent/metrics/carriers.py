"""Energy carriers and their standard-coal coefficients, each with the source it was taken from.

kgce (kilogram of coal equivalent) converts every carrier to one figure: 1 kgce is the
heat of 29 307.6 kJ (7 000 kcal), GB/T 2589. The coefficients below are the reference
values of the standard's tables; a plant that knows better (its gas supplier's calorific
value, its steam's enthalpy) configures its own (``kgce_per_unit`` or
``calorific_value``), and must for the carriers shipped without a value.

Honesty about the sources, row by row (docs/METRICS.md, "Energy carriers and
coefficients", lists the same): the 2020 edition's appendix tables could not be read
here. Electricity and heat are the same in both editions and follow from the definition
of kgce. The other values are the **2008 edition's** (Table A.1 for fuels and heat,
Table B.1 for energy-consuming working media), read from their reproduction in the Hunan
local standard DB43/T 612-2015, Appendix A (Tables A.1 and A.2), and say so in their
``source``. Values that could not be sourced at all are not shipped: such a carrier needs
the plant's own coefficient.

Units: a carrier accepts the units its coefficient converts to without a guess (mass
multiples, energy multiples, the volume the table is stated in). A litre of diesel needs a
density, so litres are not accepted. For gases and compressed air ``m3`` and ``Nm3`` both
mean the volume at the standard reference conditions the table is stated in (a meter that
counts operating volume needs its volume corrector first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

#: kJ in 1 kgce (7 000 kcal x 4.1868 kJ/kcal), GB/T 2589.
KJ_PER_KGCE: Final = 29_307.6

#: Source strings, one per table the values were read from.
SRC_2020_A: Final = (
    "GB/T 2589-2020 Appendix A (equivalent value); the same value is in the 2008 edition's "
    "Table A.1, and it is the definition of kgce"
)
SRC_2008_A1: Final = (
    "GB/T 2589-2008 Table A.1 (as reproduced in DB43/T 612-2015 Table A.1); "
    "not confirmed against the 2020 edition"
)
SRC_2008_B1: Final = (
    "GB/T 2589-2008 Table B.1, energy-consuming working media (as reproduced in "
    "DB43/T 612-2015 Table A.2); not confirmed against the 2020 edition"
)

#: Units of each dimension, as a multiple of the dimension's first unit. Two units convert
#: into each other only inside one group: m3 never becomes kg, and Nm3 is a spelling of the
#: standard volume the tables use (see the module docstring).
UNIT_GROUPS: Final[Mapping[str, Mapping[str, float]]] = MappingProxyType(
    {
        "electric": MappingProxyType({"kWh": 1.0, "Wh": 0.001, "MWh": 1000.0}),
        "mass": MappingProxyType({"kg": 1.0, "t": 1000.0}),
        "heat": MappingProxyType({"MJ": 1.0, "GJ": 1000.0}),
        "volume": MappingProxyType({"m3": 1.0, "Nm3": 1.0}),
    }
)


def group_of(unit: str) -> str | None:
    """The dimension group of a unit, or ``None`` for a unit no carrier accepts."""
    return next((name for name, units in UNIT_GROUPS.items() if unit in units), None)


def convert(amount_unit: str, into_unit: str) -> float:
    """How many ``into_unit`` one ``amount_unit`` is (both in one group; else KeyError)."""
    group = group_of(amount_unit)
    if group is None or into_unit not in UNIT_GROUPS[group]:
        raise KeyError(f"{amount_unit} does not convert to {into_unit}")
    units = UNIT_GROUPS[group]
    return units[amount_unit] / units[into_unit]


@dataclass(frozen=True, slots=True)
class Coefficient:
    """kgce per ``unit`` of a carrier, and where the number comes from."""

    kgce: float
    unit: str
    source: str


@dataclass(frozen=True, slots=True)
class Carrier:
    """An energy carrier: the units it is metered in and its reference coefficients.

    ``coefficients`` holds one entry per dimension group the carrier may be metered in
    (steam: heat in GJ has one, steam by mass has none). An empty group in ``groups``
    without a coefficient means: accepted, but the plant must give its own coefficient.
    """

    name: str
    label: str
    groups: tuple[str, ...]
    coefficients: tuple[Coefficient, ...]
    note: str = ""

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(unit for group in self.groups for unit in UNIT_GROUPS[group])

    def reference(self, unit: str) -> tuple[float, str] | None:
        """``(kgce per unit, source)`` from the tables, or ``None`` if none is shipped."""
        group = group_of(unit)
        for coefficient in self.coefficients:
            if group_of(coefficient.unit) == group:
                return coefficient.kgce * convert(unit, coefficient.unit), coefficient.source
        return None


def _water(kgce_per_t: float) -> tuple[Coefficient, Coefficient]:
    """Per t, and per m3 as water is billed (1 m3 counted as 1 t)."""
    return (
        Coefficient(kgce_per_t, "t", SRC_2008_B1),
        Coefficient(kgce_per_t, "m3", SRC_2008_B1 + "; 1 m3 of water counted as 1 t"),
    )


def _heat() -> Coefficient:
    # 1 MJ / 29.3076 MJ per kgce = 0.034121; the tables print 0.03412.
    return Coefficient(
        0.03412,
        "MJ",
        "GB/T 2589-2008 Table A.1, heat (equivalent value); "
        "= 1 MJ / 29.3076 MJ per kgce, the definition of kgce",
    )


ELECTRICITY: Final = "electricity"

CARRIERS: Final[Mapping[str, Carrier]] = MappingProxyType(
    {
        c.name: c
        for c in (
            Carrier(
                ELECTRICITY,
                "electricity (电力)",
                ("electric",),
                (Coefficient(0.1229, "kWh", SRC_2020_A),),
                "Equal value (等价值) instead: metrics.coal_equivalent.",
            ),
            Carrier(
                "natural_gas",
                "natural gas (天然气)",
                ("volume",),
                (Coefficient(1.2143, "m3", SRC_2008_A1 + ", gas-field natural gas (气田天然气)"),),
                "A range, not a constant: 2008 Table A.1 gives 1.2143 (gas-field gas) and "
                "1.3300 (oil-field gas) kgce/m3; the 2020 edition is said to give "
                "1.1000-1.3300. Set the plant's own calorific value (MJ per unit, from the gas "
                "bill) or kgce_per_unit; the default is the gas-field figure, nearest to "
                "pipeline gas.",
            ),
            Carrier(
                "steam",
                "steam (蒸汽)",
                ("heat", "mass"),
                (_heat(),),
                "By heat (GJ, MJ): the heat coefficient. By mass (t, kg) the heat content "
                "depends on pressure and temperature: set calorific_value (MJ per unit, the "
                "steam's enthalpy) or kgce_per_unit; 2008 Table A.1 lists 0.1286 kgce/kg for "
                "low-pressure steam only.",
            ),
            Carrier("heat", "heat (热力)", ("heat",), (_heat(),)),
            Carrier(
                "compressed_air",
                "compressed air (压缩空气)",
                ("volume",),
                (Coefficient(0.0400, "m3", SRC_2008_B1),),
            ),
            Carrier(
                "water_new",
                "new water (新水)",
                ("mass", "volume"),
                _water(0.0857),
                "Water meters count m3: 1 m3 is counted as 1 t, as water is billed. "
                "0.2571 kgce/t circulates as the 2020 value; it could not be confirmed.",
            ),
            Carrier(
                "water_softened",
                "softened water (软水)",
                ("mass", "volume"),
                _water(0.4857),
                "1 m3 is counted as 1 t.",
            ),
            Carrier(
                "water_deaerated",
                "deaerated water (除氧水)",
                ("mass", "volume"),
                _water(0.9714),
                "1 m3 is counted as 1 t.",
            ),
            Carrier(
                "oxygen", "oxygen (氧气)", ("volume",), (Coefficient(0.4000, "m3", SRC_2008_B1),)
            ),
            Carrier(
                "nitrogen",
                "nitrogen (氮气)",
                ("volume",),
                (),
                "No default: Table B.1 distinguishes nitrogen as a by-product (0.4000 kgce/m3) "
                "from nitrogen as the main product, whose value could not be sourced here; "
                "set kgce_per_unit.",
            ),
            Carrier(
                "diesel", "diesel (柴油)", ("mass",), (Coefficient(1.4571, "kg", SRC_2008_A1),)
            ),
            Carrier(
                "gasoline", "gasoline (汽油)", ("mass",), (Coefficient(1.4714, "kg", SRC_2008_A1),)
            ),
            Carrier(
                "lpg",
                "liquefied petroleum gas (液化石油气)",
                ("mass",),
                (Coefficient(1.7143, "kg", SRC_2008_A1),),
            ),
            Carrier(
                "fuel_oil",
                "fuel oil (燃料油)",
                ("mass",),
                (Coefficient(1.4286, "kg", SRC_2008_A1),),
            ),
            Carrier(
                "raw_coal", "raw coal (原煤)", ("mass",), (Coefficient(0.7143, "kg", SRC_2008_A1),)
            ),
        )
    }
)


def carrier(name: str) -> Carrier:
    """The carrier of that name; KeyError listing the known ones otherwise."""
    try:
        return CARRIERS[name]
    except KeyError:
        raise KeyError(f"unknown carrier {name!r} (known: {', '.join(CARRIERS)})") from None


def kgce_from_calorific_value(mj_per_unit: float) -> float:
    """kgce per unit of a carrier whose net calorific value is ``mj_per_unit`` MJ per unit."""
    return mj_per_unit * 1000.0 / KJ_PER_KGCE

"""kgce of every carrier against hand-computed values, the grid-factor table, the config.

One test per carrier writes its arithmetic out: the reference coefficient (or the plant's
own) times an amount, in the units the meter counts in.
"""

from __future__ import annotations

from typing import get_args

import pytest

from edge_agent.config.carriers import CarrierName, grid_factor, meter_units
from edge_agent.config.metrics import MeterConfig, MetricsConfig
from edge_agent.metrics.carriers import CARRIERS, kgce_from_calorific_value
from edge_agent.metrics.emission_factors import DEFAULT_GRID_FACTOR, GRID_FACTORS, lookup


def kgce(carrier: str, unit: str, amount: float, **own: float) -> float:
    units = meter_units(carrier, unit, None, own.get("kgce_per_unit"), own.get("calorific"))
    return amount * units.kgce_per_unit


def test_the_config_names_every_carrier_of_the_table() -> None:
    assert set(get_args(CarrierName)) == set(CARRIERS)
    for carrier in CARRIERS.values():
        assert carrier.units, carrier.name
        for coefficient in carrier.coefficients:
            assert "GB/T 2589" in coefficient.source


def test_electricity() -> None:
    # 1 000 kWh x 0.1229 kgce/kWh = 122.9 kgce; 2 MWh = 2 000 kWh -> 245.8 kgce
    assert CARRIERS["electricity"].reference("kWh") == (
        0.1229,
        CARRIERS["electricity"].coefficients[0].source,
    )
    reference = CARRIERS["electricity"].reference("MWh")
    assert reference is not None
    assert 2 * reference[0] == pytest.approx(245.8)


def test_natural_gas_default_and_own_calorific_value() -> None:
    # 100 Nm3 x 1.2143 kgce/m3 (2008 Table A.1, gas-field gas) = 121.43 kgce
    assert kgce("natural_gas", "Nm3", 100) == pytest.approx(121.43)
    assert kgce("natural_gas", "m3", 100) == pytest.approx(121.43)
    # Own calorific value 35.59 MJ/Nm3: 100 x 35.59 MJ / 29.3076 MJ/kgce = 121.436 kgce
    assert kgce("natural_gas", "Nm3", 100, calorific=35.59) == pytest.approx(3559 / 29.3076)
    # Own coefficient 1.33 kgce/m3: 100 x 1.33 = 133 kgce
    assert kgce("natural_gas", "m3", 100, kgce_per_unit=1.33) == pytest.approx(133.0)


def test_steam_by_heat_and_by_mass() -> None:
    # 2 GJ = 2 000 MJ x 0.03412 kgce/MJ = 68.24 kgce
    assert kgce("steam", "GJ", 2) == pytest.approx(68.24)
    # By mass only with the steam's enthalpy: 3 t x 2 756.7 MJ/t / 29.3076 = 282.19 kgce
    assert kgce("steam", "t", 3, calorific=2756.7) == pytest.approx(3 * 2756.7 / 29.3076)
    with pytest.raises(ValueError, match="kgce_per_unit: steam in t has no reference"):
        kgce("steam", "t", 3)


def test_heat() -> None:
    # 500 MJ x 0.03412 = 17.06 kgce; 1.5 GJ x 34.12 = 51.18 kgce
    assert kgce("heat", "MJ", 500) == pytest.approx(17.06)
    assert kgce("heat", "GJ", 1.5) == pytest.approx(51.18)


def test_compressed_air() -> None:
    # 1 000 m3 x 0.0400 kgce/m3 = 40 kgce
    assert kgce("compressed_air", "m3", 1000) == pytest.approx(40.0)
    assert kgce("compressed_air", "Nm3", 1000) == pytest.approx(40.0)


def test_new_water() -> None:
    # 250 t x 0.0857 kgce/t = 21.425 kgce; a water meter's 250 m3 counts as 250 t
    assert kgce("water_new", "t", 250) == pytest.approx(21.425)
    assert kgce("water_new", "m3", 250) == pytest.approx(21.425)
    # 2 000 kg = 2 t -> 0.1714 kgce
    assert kgce("water_new", "kg", 2000) == pytest.approx(0.1714)


def test_softened_water() -> None:
    # 40 t x 0.4857 kgce/t = 19.428 kgce
    assert kgce("water_softened", "t", 40) == pytest.approx(19.428)


def test_deaerated_water() -> None:
    # 10 m3 (= 10 t) x 0.9714 kgce/t = 9.714 kgce
    assert kgce("water_deaerated", "m3", 10) == pytest.approx(9.714)


def test_oxygen() -> None:
    # 300 m3 x 0.4000 kgce/m3 = 120 kgce
    assert kgce("oxygen", "m3", 300) == pytest.approx(120.0)


def test_nitrogen_needs_the_plants_own_coefficient() -> None:
    with pytest.raises(ValueError, match="kgce_per_unit: nitrogen in m3 has no reference"):
        kgce("nitrogen", "m3", 1)
    # By-product nitrogen, configured: 50 m3 x 0.4 = 20 kgce
    assert kgce("nitrogen", "m3", 50, kgce_per_unit=0.4) == pytest.approx(20.0)


def test_diesel() -> None:
    # 1.2 t = 1 200 kg x 1.4571 kgce/kg = 1 748.52 kgce; litres are refused (density)
    assert kgce("diesel", "t", 1.2) == pytest.approx(1748.52)
    with pytest.raises(ValueError, match="needs a density"):
        kgce("diesel", "m3", 1)


def test_gasoline() -> None:
    # 80 kg x 1.4714 kgce/kg = 117.712 kgce
    assert kgce("gasoline", "kg", 80) == pytest.approx(117.712)


def test_lpg() -> None:
    # 45 kg x 1.7143 kgce/kg = 77.1435 kgce
    assert kgce("lpg", "kg", 45) == pytest.approx(77.1435)


def test_fuel_oil() -> None:
    # 2 t x 1 428.6 kgce/t = 2 857.2 kgce
    assert kgce("fuel_oil", "t", 2) == pytest.approx(2857.2)


def test_raw_coal() -> None:
    # 5 t x 714.3 kgce/t = 3 571.5 kgce
    assert kgce("raw_coal", "t", 5) == pytest.approx(3571.5)


def test_calorific_value_is_the_definition_of_kgce() -> None:
    # 29.3076 MJ is 1 kgce: 7 000 kcal x 4.1868 kJ/kcal
    assert kgce_from_calorific_value(29.3076) == pytest.approx(1.0)


def test_flow_converts_into_the_counter_unit_only_within_a_dimension() -> None:
    units = meter_units("diesel", "t", "kg/h", None, None)
    assert (units.amount_unit, units.flow_factor) == ("t", 0.001)
    assert units.kgce_per_unit == pytest.approx(1457.1)
    flow_only = meter_units("steam", None, "GJ/h", None, None)
    assert (flow_only.amount_unit, flow_only.flow_factor) == ("GJ", 1.0)
    with pytest.raises(ValueError, match=r"power\.unit: GJ/h does not convert"):
        meter_units("steam", "t", "GJ/h", 2.0, None)


def test_grid_factors_published_and_the_default() -> None:
    assert lookup(2023, "national").value == 0.5306
    assert lookup(2022, "national").value == 0.5366
    assert lookup(2023, "regional", "east").value == 0.5500
    assert lookup(2023, "regional", "southwest").value == 0.2472
    assert lookup(2023, "national") == DEFAULT_GRID_FACTOR
    old = lookup(2022, "reporting", "power_generation_2023_notice")
    assert old.value == 0.5703
    assert "2023-2025" in old.source
    assert all(f.source for f in GRID_FACTORS)
    with pytest.raises(KeyError, match=r"available: .*2023 national"):
        lookup(2024, "national")


def test_grid_setting_is_a_number_or_a_selection() -> None:
    assert grid_factor(MetricsConfig().grid_emission_factor)[0] == 0.5306
    own = MetricsConfig(grid_emission_factor=0.61).grid_emission_factor
    assert grid_factor(own) == (0.61, "0.61 kgCO2e/kWh (the plant's own value)")
    east = MetricsConfig(grid_emission_factor={"year": 2023, "scope": "regional", "region": "east"})
    value, source = grid_factor(east.grid_emission_factor)
    assert value == 0.55
    assert "MEE & NBS" in source
    with pytest.raises(ValueError, match="scope regional needs a region"):
        MetricsConfig(grid_emission_factor={"year": 2023, "scope": "regional"})


def test_electricity_meters_refuse_carrier_factors() -> None:
    with pytest.raises(ValueError, match="kgco2e_per_unit: not for electricity"):
        MeterConfig(device="m", counter={"tag": "e"}, kgco2e_per_unit=0.2)
    with pytest.raises(ValueError, match=r"counter\.unit: electricity is counted in"):
        MeterConfig(device="m", counter={"tag": "e", "unit": "Nm3"})


def test_a_calorific_value_in_kcal_is_refused_with_the_unit_guessed() -> None:
    """Gas bills print the calorific value in kcal/m3 (8 300): taken as MJ it gave
    283 kgce/m3, 233 times the reference. A value outside 0.5x-2x of the reference
    calorific value (1.2143 kgce/m3 x 29.3076 = 35.59 MJ/m3) is refused, its unit guessed."""
    with pytest.raises(
        ValueError, match=r"8300 looks like kcal/Nm3: 1 MJ = 238\.85 kcal, so 34\.75 MJ/Nm3"
    ) as caught:
        meter_units("natural_gas", "Nm3", None, None, 8300)
    assert str(caught.value).startswith("calorific_value: 8300 MJ/Nm3 is")
    assert "35.59 MJ/Nm3" in str(caught.value)  # the reference it was compared with
    with pytest.raises(ValueError, match=r"35590 looks like kJ/m3: 1 MJ = 1000 kJ, so 35\.59"):
        meter_units("natural_gas", "m3", None, None, 35590)
    with pytest.raises(ValueError, match=r"10\.5 looks like kWh/m3: 1 kWh = 3\.6 MJ, so 37\.8"):
        meter_units("natural_gas", "m3", None, None, 10.5)
    # A plant's own value within the band, and a carrier without a reference, are taken.
    assert meter_units("natural_gas", "m3", None, None, 31.4).kgce_per_unit == pytest.approx(
        31.4 / 29.3076
    )
    assert meter_units("steam", "t", None, None, 2756.7).kgce_per_unit == pytest.approx(
        2756.7 / 29.3076
    )
    # 180 is in no known unit of gas's calorific value: refused, no guess.
    with pytest.raises(ValueError, match=r"17\.8-71\.2 MJ/m3\)$"):
        meter_units("natural_gas", "m3", None, None, 180)


def test_a_kgce_per_unit_far_from_the_reference_is_refused_with_the_unit_guessed() -> None:
    with pytest.raises(ValueError, match=r"12\.143 looks like tce per 10 000 m3") as caught:
        meter_units("natural_gas", "m3", None, 12.143, None)
    assert "so 1.2143 kgce/m3" in str(caught.value)
    with pytest.raises(ValueError, match=r"35\.59 looks like a calorific value in MJ/m3"):
        meter_units("natural_gas", "m3", None, 35.59, None)
    with pytest.raises(ValueError, match=r"0\.0014571 looks like tce/kg: 1 tce = 1000 kgce"):
        meter_units("diesel", "kg", None, 0.0014571, None)
    # Oil-field gas (1.33) is a plant's own value: taken.
    assert meter_units("natural_gas", "m3", None, 1.33, None).kgce_per_unit == 1.33
    # A working medium's coefficient is the energy spent making it, which depends on the
    # plant's machines: compressed air from an efficient compressor at 0.1 kWh/m3 is
    # 0.0123 kgce/m3, a third of the table's 0.04; taken. Ten times off is not.
    assert meter_units("compressed_air", "m3", None, 0.0123, None).kgce_per_unit == 0.0123
    with pytest.raises(ValueError, match=r"kgce_per_unit: 0\.4 kgce/m3 is"):
        meter_units("compressed_air", "m3", None, 0.4, None)

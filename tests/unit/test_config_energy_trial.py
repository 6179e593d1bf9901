"""What a new user's trial of the energy features found in ``check`` (issue 16).

Each test is one finding of the trial: a bad setting must not hide the other problems
of the same file, a misspelt selection gets its "did you mean", a configuration that
silently loses cost is warned about, and every message points at the line it is about.
"""

from __future__ import annotations

import pytest

from edge_agent.config.loader import inspect_config, parse_config
from edge_agent.errors import ConfigError

HEAD = """\
plant: {name: line-1, timezone: Asia/Shanghai}
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1}
    poll_groups:
      - interval: 1s
        tags:
          - {name: energy, address: 0, type: uint32, scale: 0.01}
          - {name: volume, address: 2, type: uint32, scale: 0.01}
metrics:
"""

#: A tariff whose prices break the NDRC ratio (a warning) and whose calendar misses
#: December and 23:00-24:00 (two errors).
GAPPY_TARIFF = """\
  tariffs:
    - name: grid
      prices: {peak: 1.1, flat: 0.66, valley: 0.55}
      seasons:
        - name: all
          months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
          workday:
            - {start: "00:00", end: "08:00", period: valley}
            - {start: "08:00", end: "23:00", period: flat}
  meters:
    - {device: meter, counter: {tag: energy}, tariff: grid}
"""

WHOLE_YEAR = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]"


def report(text: str) -> list[str]:
    """Problems and warnings of ``text`` in line order (``check``'s output)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "plant.yaml", env={})
    return caught.value.report


def test_a_bad_grid_factor_selection_hides_no_tariff_problem() -> None:
    lines = report(
        HEAD
        + "  grid_emission_factor: {year: 2022, scope: regional, region: huadong}\n"
        + GAPPY_TARIFF
    )
    text = "\n".join(lines)
    assert "plant.yaml:12: metrics.grid_emission_factor: " in text
    assert "23:00-24:00 is in no period" in text
    assert "month 12 is in no season" in text
    assert "warning: peak/valley is 2.00:1" in text


def test_a_misspelt_region_gets_did_you_mean_and_the_rows_compactly() -> None:
    huadong = "  grid_emission_factor: {year: 2022, scope: regional, region: huadong}\n"
    (line,) = report(HEAD + huadong)
    assert "'huadong'" in line
    assert "did you mean east (华东 East China)?" in line
    # The rows of that year and scope, with their values, and not every row of the table.
    assert "2022 regional: north 0.6776, northeast 0.5564, east 0.5617," in line
    assert "2023" not in line
    (line,) = report(HEAD + "  grid_emission_factor: {year: 2023, scope: regional, region: 华东}\n")
    assert "did you mean east (华东 East China)?" in line


def test_a_misspelt_scope_and_carrier_get_did_you_mean() -> None:
    (line,) = report(HEAD + "  grid_emission_factor: {year: 2023, scope: regionl, region: east}\n")
    assert "did you mean regional?" in line
    (line,) = report(
        HEAD + "  meters:\n    - {device: meter, carrier: gas, counter: {tag: volume, unit: m3}}\n"
    )
    assert "'gas' is not one of electricity, natural_gas," in line
    assert line.endswith("did you mean natural_gas?")
    chinese = (
        "  meters:\n    - {device: meter, carrier: 天然气, counter: {tag: volume, unit: m3}}\n"
    )
    (line,) = report(HEAD + chinese)
    assert line.endswith("did you mean natural_gas?")


def test_a_year_without_rows_lists_what_the_table_has_compactly() -> None:
    (line,) = report(HEAD + "  grid_emission_factor: {year: 2024, scope: national}\n")
    assert "no grid emission factor for 2024 national" in line
    assert "national: 2021 0.5568, 2022 0.5366, 2023 0.5306" in line


def flat_tariff(name: str) -> str:
    return (
        f"    - name: {name}\n"
        "      prices: {flat: 0.6}\n"
        f"      seasons: [{{name: all, months: {WHOLE_YEAR}, "
        'workday: [{start: "00:00", end: "24:00", period: flat}]}]\n'
    )


def test_a_second_tariff_warns_of_each_electricity_meter_it_leaves_unpriced() -> None:
    """With one tariff, a meter without ``tariff:`` is priced by it; a second tariff
    takes that default away and the meter's cost vanished while ``check`` said valid."""
    meters = (
        "  meters:\n"
        "    - {device: meter, counter: {tag: energy}}\n"
        "    - {device: meter, name: sub, counter: {tag: energy}, tariff: grid}\n"
        "    - {device: meter, name: gas, carrier: natural_gas, counter: {tag: volume, unit: m3}}\n"
    )
    one = HEAD + "  tariffs:\n" + flat_tariff("grid") + meters
    assert inspect_config(one, "plant.yaml", env={}).warnings == []
    two = HEAD + "  tariffs:\n" + flat_tariff("grid") + flat_tariff("spare") + meters
    (warning,) = inspect_config(two, "plant.yaml", env={}).warnings
    assert warning.startswith("plant.yaml:20: metrics.meters[0]: warning: meter 'meter' has no ")
    assert "2 tariffs" in warning
    assert "set tariff: grid or spare" in warning


def test_a_gas_meter_in_the_plant_total_gets_no_tariff_warning() -> None:
    """Its error says it does not belong there; "has no tariff" was noise (tariffs price
    electricity only)."""
    text = (
        HEAD + "  tariffs:\n" + flat_tariff("grid") + "  meters:\n"
        "    - {device: meter, counter: {tag: energy}}\n"
        "    - {device: meter, name: gas, carrier: natural_gas, counter: {tag: volume, unit: m3}}\n"
        "  plant_total: [meter, gas]\n"
    )
    lines = report(text)
    assert [line for line in lines if "tariff" in line] == []
    assert any("'gas' is a natural_gas meter" in line for line in lines)


def test_unit_and_coefficient_errors_point_at_their_own_line() -> None:
    """They were at the meter's first line, away from the line to change."""
    text = HEAD + (
        "  meters:\n"
        "    - device: meter\n"  # line 13
        "      name: oil\n"
        "      carrier: diesel\n"
        "      counter:\n"
        "        tag: volume\n"
        "        unit: m3\n"  # line 18
        "    - device: meter\n"  # line 19
        "      name: gas\n"
        "      carrier: natural_gas\n"
        "      counter: {tag: volume, unit: m3}\n"
        "      calorific_value: 8300\n"  # line 23
        "    - device: meter\n"  # line 24
        "      name: flow\n"
        "      carrier: natural_gas\n"
        "      power: {tag: volume, unit: t/h}\n"  # line 27
    )
    lines = report(text)
    assert lines[0].startswith("plant.yaml:18: metrics.meters[0].counter.unit: diesel is counted")
    assert lines[1].startswith("plant.yaml:23: metrics.meters[1].calorific_value: 8300 MJ/m3 is")
    assert lines[2].startswith("plant.yaml:27: metrics.meters[2].power.unit: a natural_gas flow")

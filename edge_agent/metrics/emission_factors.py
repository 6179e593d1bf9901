"""Grid CO2 emission factors as a versioned table: year, scope, region, value, source.

The Ministry of Ecology and Environment (MEE, 生态环境部) and the National Bureau of
Statistics (NBS, 国家统计局) publish, per data year, the *electricity CO2 emission
factors* (电力二氧化碳排放因子): the national, regional-grid and provincial average
(全国、区域和省级电力平均二氧化碳排放因子), for "accounting the CO2 emissions of electricity
consumption". The rows below are those figures as the press reported the announcements
(the announcements' own tables could not be read here); every row names its report.
Figures that could not be found are not here (docs/METRICS.md, "Grid emission factors").

0.5703 is a different figure: the national grid average emission factor MEE set in its
February 2023 notice on the 2023-2025 greenhouse-gas reporting of power-generation
companies, for their 2022 reporting. It is kept, labelled as such, because reports made
under that notice must keep using it; it is not the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Scope = Literal["national", "regional", "provincial", "reporting"]
SCOPES: Final = ("national", "regional", "provincial", "reporting")
#: Regional grids, as the announcements name them.
REGIONS: Final = {
    "north": "华北 North China",
    "northeast": "东北 Northeast",
    "east": "华东 East China",
    "central": "华中 Central China",
    "northwest": "西北 Northwest",
    "south": "南方 South (China Southern Grid)",
    "southwest": "西南 Southwest",
}

_SRC_2021 = (
    "MEE & NBS announcement on the 2021 electricity CO2 emission factors (公告2024年第12号, "
    "2024-04-12), national average 0.5568 as reported with the 2022 figures (Beijing News, "
    "2024-12-27)"
)
_SRC_2022 = (
    "MEE & NBS announcement on the 2022 electricity CO2 emission factors (dated 2024-12-20), "
    "as reported by the Beijing News (新京报), 2024-12-27; regional values agree with the "
    "2023 report's year-on-year changes"
)
_SRC_2023 = (
    "MEE & NBS announcement on the 2023 electricity CO2 emission factors "
    "(关于发布2023年电力二氧化碳排放因子的公告), as reported by Guangming Daily (光明日报) and "
    "China Electric Power News (中国电力报, 2026-01-15)"
)
_SRC_0_5703 = (
    "MEE notice on the 2023-2025 greenhouse-gas reporting of power-generation companies "
    "(关于做好2023—2025年发电行业企业温室气体排放报告管理有关工作的通知, February 2023): "
    "national grid average emission factor for 2022 reporting, 0.5703 tCO2/MWh"
)


@dataclass(frozen=True, slots=True)
class GridFactor:
    """One published factor: kgCO2 per kWh of electricity consumed."""

    year: int
    scope: Scope
    region: str | None
    value: float
    source: str

    def describe(self) -> str:
        where = self.scope if self.region is None else f"{self.scope} {self.region}"
        return f"{self.value:g} kgCO2/kWh ({self.year} {where}; {self.source})"


def _regional(year: int, source: str, values: dict[str, float]) -> list[GridFactor]:
    return [GridFactor(year, "regional", region, v, source) for region, v in values.items()]


GRID_FACTORS: Final[tuple[GridFactor, ...]] = (
    GridFactor(2021, "national", None, 0.5568, _SRC_2021),
    GridFactor(2022, "national", None, 0.5366, _SRC_2022),
    *_regional(
        2022,
        _SRC_2022,
        {
            "north": 0.6776,
            "northeast": 0.5564,
            "east": 0.5617,
            "central": 0.5395,
            "northwest": 0.5857,
            "south": 0.3869,
            "southwest": 0.2268,
        },
    ),
    GridFactor(2023, "national", None, 0.5306, _SRC_2023),
    *_regional(
        2023,
        _SRC_2023,
        {
            "north": 0.6361,
            "northeast": 0.5122,
            "east": 0.5500,
            "central": 0.5271,
            "northwest": 0.5543,
            "south": 0.4042,
            "southwest": 0.2472,
        },
    ),
    GridFactor(2022, "reporting", "power_generation_2023_notice", 0.5703, _SRC_0_5703),
)

#: The default: the latest national average.
DEFAULT_GRID_FACTOR: Final = max(
    (f for f in GRID_FACTORS if f.scope == "national"), key=lambda f: f.year
)


def available(scope: str | None = None) -> list[str]:
    """``year scope [region]`` of every factor (of one scope), for error messages."""
    return [
        f"{f.year} {f.scope}" + (f" {f.region}" if f.region else "")
        for f in GRID_FACTORS
        if scope is None or f.scope == scope
    ]


def lookup(year: int, scope: str, region: str | None = None) -> GridFactor:
    """The factor of that selection; KeyError saying what exists otherwise."""
    for factor in GRID_FACTORS:
        if (factor.year, factor.scope, factor.region) == (year, scope, region):
            return factor
    if scope in ("regional", "reporting") and region is None:
        raise KeyError(f"scope {scope} needs a region; available: {'; '.join(available(scope))}")
    raise KeyError(
        f"no grid emission factor for {year} {scope}"
        + (f" {region}" if region else "")
        + f"; available: {'; '.join(available())}"
    )

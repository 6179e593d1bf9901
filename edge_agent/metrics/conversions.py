"""kWh to standard coal equivalent (kgce) and to CO2 equivalent (kgCO2e).

Sources (details and caveats in docs/METRICS.md):

* GB/T 2589-2020 *General principles for calculation of the comprehensive energy
  consumption*, Appendix A: electricity converts to standard coal by its
  *equivalent value* (当量值, the heat content of 1 kWh, 3600 kJ, over the 29 307.6 kJ
  of 1 kgce) = **0.1229 kgce/kWh**, the default here; or by its *equal value*
  (等价值), the coal burnt to generate and deliver 1 kWh, which depends on the year's
  average coal consumption of power supply and must therefore be configured.
* The grid emission factor is per plant and per year. The default, 0.5703 kgCO2/kWh,
  is the national grid average the Ministry of Ecology and Environment published in
  2023 for the accounting of 2022 emissions; regional and later factors differ, so a
  plant should set the one its reporting uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: GB/T 2589-2020, Appendix A: electricity, equivalent value (当量值), kgce per kWh.
KGCE_PER_KWH_EQUIVALENT: Final = 0.1229
#: National grid average CO2 emission factor for 2022 (MEE, 2023), kgCO2 per kWh.
GRID_FACTOR_CN_2022: Final = 0.5703


@dataclass(frozen=True, slots=True)
class Conversions:
    """Per-plant factors: kgce and kgCO2e per kWh."""

    kgce_per_kwh: float = KGCE_PER_KWH_EQUIVALENT
    kgco2e_per_kwh: float = GRID_FACTOR_CN_2022

    def kgce(self, kwh: float) -> float:
        return kwh * self.kgce_per_kwh

    def kgco2e(self, kwh: float) -> float:
        return kwh * self.kgco2e_per_kwh

"""kWh to standard coal equivalent (kgce) and to CO2 equivalent (kgCO2e).

Sources (details and caveats in docs/METRICS.md):

* GB/T 2589-2020 *General principles for calculation of the comprehensive energy
  consumption*, Appendix A: electricity converts to standard coal by its
  *equivalent value* (当量值, the heat content of 1 kWh, 3600 kJ, over the 29 307.6 kJ
  of 1 kgce) = **0.1229 kgce/kWh**, the default here; or by its *equal value*
  (等价值), the coal burnt to generate and deliver 1 kWh, which depends on the year's
  average coal consumption of power supply and must therefore be configured.
* The grid emission factor is per plant and per year: a row of the versioned table in
  :mod:`~edge_agent.metrics.emission_factors` (``metrics.grid_emission_factor:
  {year, scope, region}``) or the plant's own number. The default is the latest national
  average there (2023: 0.5306 kgCO2/kWh, MEE and NBS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from edge_agent.metrics.emission_factors import DEFAULT_GRID_FACTOR

#: GB/T 2589-2020, Appendix A: electricity, equivalent value (当量值), kgce per kWh.
KGCE_PER_KWH_EQUIVALENT: Final = 0.1229
#: The default grid CO2 emission factor, kgCO2 per kWh: the latest national average.
GRID_FACTOR_DEFAULT: Final = DEFAULT_GRID_FACTOR.value


@dataclass(frozen=True, slots=True)
class Conversions:
    """Per-plant factors: kgce and kgCO2e per kWh."""

    kgce_per_kwh: float = KGCE_PER_KWH_EQUIVALENT
    kgco2e_per_kwh: float = GRID_FACTOR_DEFAULT

    def kgce(self, kwh: float) -> float:
        return kwh * self.kgce_per_kwh

    def kgco2e(self, kwh: float) -> float:
        return kwh * self.kgco2e_per_kwh

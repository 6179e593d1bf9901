"""The ``tariff`` family: a closed window's kWh and cost by time-of-use period.

For a meter with a tariff, and for the plant total when every member meter has one
(docs/METRICS.md, "Cost by time-of-use tariff"):

* ``kwh_<period>``: the window's energy used in that period (late energy included,
  in the period it was used in), for each period the tariff prices;
* ``cost_<period>`` = ``kwh_<period>`` x the period's price;
* ``cost`` = the sum of ``cost_<period>``;
* ``peak_share`` = (critical peak + peak kWh) / all kWh, 0-1.

The plant total adds its members' period kWh, and prices each member's kWh by that
member's own tariff: its cost is the sum of the members' costs whether or not they
share a tariff. The batch carries the currency as the attribute ``currency``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Final

from edge_agent.metrics.accumulators import PERIOD_COUNT, EnergyAcc
from edge_agent.metrics.output import metric_batch
from edge_agent.metrics.specs import Context
from edge_agent.metrics.tariff import PERIODS, TariffSpec, cost_by_period, peak_share
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.model import SampleBatch

FAMILY: Final = "tariff"
#: Batch attribute naming the currency of the ``cost`` values (ISO 4217).
CURRENCY: Final = "currency"


@cache
def tariff_names(priced: tuple[int, ...]) -> tuple[str, ...]:
    """Names of the family for the periods ``priced`` (period numbers, in order)."""
    return (
        *(f"kwh_{PERIODS[p]}" for p in priced),
        *(f"cost_{PERIODS[p]}" for p in priced),
        "cost",
        "peak_share",
    )


def tariff_values(
    members: Sequence[tuple[EnergyAcc, TariffSpec]],
) -> tuple[tuple[int, ...], list[float | None]]:
    """(priced periods, values in :func:`tariff_names` order) of one or more meters' windows."""
    priced = tuple(sorted({p for _, spec in members for p in spec.priced}))
    if not any(acc.touched for acc, _ in members):
        return priced, [None] * (2 * len(priced) + 2)
    kwh = [0.0] * PERIOD_COUNT
    cost = [0.0] * PERIOD_COUNT
    for acc, spec in members:
        for p, (k, c) in enumerate(
            zip(acc.period_kwh, cost_by_period(acc.period_kwh, spec), strict=True)
        ):
            kwh[p] += k
            cost[p] += c
    values: list[float | None] = [kwh[p] for p in priced]
    values += [cost[p] for p in priced]
    values += [sum(cost), peak_share(kwh)]
    return priced, values


def tariff_batch(
    device: str,
    kind: str,
    window: OpenWindow[Any],
    members: Sequence[tuple[EnergyAcc, TariffSpec]],
    coverage: float,
    ctx: Context,
) -> SampleBatch:
    """The ``tariff`` batch of a closed window (quality by the energy's coverage)."""
    priced, values = tariff_values(members)
    batch = metric_batch(
        device, kind, window, FAMILY, tariff_names(priced), values, coverage, ctx.min_coverage
    )
    batch.attributes[CURRENCY] = members[0][1].currency
    return batch

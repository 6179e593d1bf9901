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

**A period the tariff no longer prices.** Editing a tariff keeps the open windows, with
their kWh already split into the old periods. kWh of a period the edited tariff has
dropped cannot be re-split after the fact (when in the window they were used is gone), and
were published as free and outside every ``kwh_<period>``. They are moved to the periods
the tariff now gives the window's time, in proportion to time: exact when the window lies
in one period now (it is all that period's energy under the new calendar), otherwise an
estimate, and the window's tariff values are then uncertain with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Final

from edge_agent.metrics.accumulators import PERIOD_COUNT, EnergyAcc
from edge_agent.metrics.output import metric_batch
from edge_agent.metrics.specs import Context
from edge_agent.metrics.tariff import PERIODS, TariffCalendar, cost_by_period, peak_share
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.model import Quality, SampleBatch

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


def priced_kwh(
    acc: EnergyAcc, calendar: TariffCalendar, start_ns: int, end_ns: int
) -> tuple[list[float], str]:
    """The window's kWh by period, those of periods the tariff no longer prices moved to
    the periods it gives ``[start_ns, end_ns)`` now (module docstring); and the reason
    the result is an estimate ("" when it is not)."""
    prices = calendar.spec.prices
    kwh = list(acc.period_kwh)
    dropped = [p for p, k in enumerate(kwh) if k != 0.0 and prices[p] is None]
    if not dropped:
        return kwh, ""
    moved = sum(kwh[p] for p in dropped)
    for p in dropped:
        kwh[p] = 0.0
    calendar.add(kwh, start_ns, end_ns, moved)
    if len({period for _, _, period in calendar.split(start_ns, end_ns)}) == 1:
        return kwh, ""
    names = ", ".join(PERIODS[p] for p in dropped)
    return kwh, (
        f"tariff {calendar.spec.name!r} was edited while this window was open: its "
        f"{moved:.3f} kWh of {names} (no longer priced) are spread over the window's "
        "current periods by time"
    )


def tariff_values(
    members: Sequence[tuple[EnergyAcc, TariffCalendar]], start_ns: int, end_ns: int
) -> tuple[tuple[int, ...], list[float | None], str]:
    """(priced periods, values in :func:`tariff_names` order, why they are an estimate or
    "") of one or more meters' windows ``[start_ns, end_ns)``."""
    priced = tuple(sorted({p for _, cal in members for p in cal.spec.priced}))
    if not any(acc.touched for acc, _ in members):
        return priced, [None] * (2 * len(priced) + 2), ""
    kwh = [0.0] * PERIOD_COUNT
    cost = [0.0] * PERIOD_COUNT
    reasons: list[str] = []
    for acc, calendar in members:
        member_kwh, reason = priced_kwh(acc, calendar, start_ns, end_ns)
        if reason:
            reasons.append(reason)
        for p, (k, c) in enumerate(
            zip(member_kwh, cost_by_period(member_kwh, calendar.spec), strict=True)
        ):
            kwh[p] += k
            cost[p] += c
    values: list[float | None] = [kwh[p] for p in priced]
    values += [cost[p] for p in priced]
    values += [sum(cost), peak_share(kwh)]
    return priced, values, "; ".join(dict.fromkeys(reasons))


def tariff_batch(
    device: str,
    kind: str,
    window: OpenWindow[Any],
    members: Sequence[tuple[EnergyAcc, TariffCalendar]],
    coverage: float,
    ctx: Context,
) -> SampleBatch:
    """The ``tariff`` batch of a closed window (quality by the energy's coverage, and
    uncertain where the split by period is an estimate)."""
    priced, values, estimated = tariff_values(members, window.start_ns, window.end_ns)
    batch = metric_batch(
        device, kind, window, FAMILY, tariff_names(priced), values, coverage, ctx.min_coverage
    )
    if estimated:
        for index, quality in enumerate(batch.qualities):
            if quality is Quality.GOOD:
                batch.qualities[index] = Quality.UNCERTAIN
                batch.reasons[index] = estimated
    batch.attributes[CURRENCY] = members[0][1].spec.currency
    return batch

"""The metric-batch contract: how a metric batch is marked, and the one way to read it.

A metric batch is an ordinary :class:`~edge_agent.model.SampleBatch` (docs/METRICS.md,
"What is published"): ``device`` = unit name, ``group`` = ``metrics:<window>``,
``timestamp_ns`` = window start, and string attributes ``kind: metrics``, ``family``,
``window``, ``window_start``, ``window_end`` (nanoseconds as decimal strings), for a
shift window ``shift`` and, for a figure of a window that is still running (the demand
guard's live prediction, a baseline fit announced during the day), ``as_of``: when its
values were known (ns as a decimal string). A batch without ``as_of`` is a closed
window's figure, known at the window's end. Those attributes are the disk and wire
format (the outbox stores them as they are, the MQTT payload carries them in this
order), so they stay plain strings; :class:`MetricInfo` is their typed view.

:mod:`~edge_agent.metrics.output` writes them (:meth:`MetricInfo.attributes`); the
sinks and the pipeline read them through :func:`metric_info` and nothing else.

This module imports only the model: the sinks call it for every batch they deliver,
and :mod:`~edge_agent.metrics.output` would bring the calculators, the config models
and pydantic into every sink with it.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from edge_agent.model import SampleBatch

#: ``attributes[KIND]`` of a metric batch (the key is shared with ``model.KIND_ALIVE``).
KIND: Final = "kind"
KIND_METRICS: Final = "metrics"
FAMILY: Final = "family"
WINDOW: Final = "window"
WINDOW_START: Final = "window_start"
WINDOW_END: Final = "window_end"
SHIFT: Final = "shift"
#: When a running window's figure was known (ns); absent for a closed window's.
AS_OF: Final = "as_of"
#: ``attributes[KIND]`` of an event batch (:mod:`~edge_agent.metrics.events` writes them)
#: and of a report batch (one JSON report as the string value ``report``).
KIND_EVENT: Final = "event"
KIND_REPORT: Final = "report"
EVENT: Final = "event"
SEVERITY: Final = "severity"
STATE: Final = "state"
REPORT: Final = "report"
DAY: Final = "day"
#: ``group`` of event and report batches.
EVENTS_GROUP: Final = "events"
REPORTS_GROUP: Final = "reports"
#: ``group`` of a metric batch: this prefix and the window name.
GROUP_PREFIX: Final = "metrics:"


class MetricInfo(NamedTuple):
    """What a metric batch says about itself, beyond its samples.

    A named tuple rather than a frozen dataclass: made for every metric batch each sink
    delivers, it costs a quarter of one (about 230 ns against 970 here).

    ``bounds`` is ``(start_ns, end_ns)`` of the window; ``None`` when the attributes do
    not hold two integers there (not written by this agent): such a batch still goes to
    the metric topic and measurement, only without a readable window. ``shift`` is the
    shift's name for a shift window, ``None`` otherwise. ``as_of`` (ns) is set for the
    figure of a window that is still running: the time its values were known (the
    producer says it; a figure stamped at its window's start is no proof of either);
    ``None`` for a closed window's figure, known at the window's end (:func:`known_at_ns`).
    """

    family: str
    window: str
    bounds: tuple[int, int] | None
    shift: str | None = None
    as_of: int | None = None

    def attributes(self) -> dict[str, str]:
        """The batch attributes that :func:`metric_info` reads back as this."""
        attributes = {KIND: KIND_METRICS, FAMILY: self.family, WINDOW: self.window}
        if self.bounds is not None:
            attributes[WINDOW_START] = str(self.bounds[0])
            attributes[WINDOW_END] = str(self.bounds[1])
        if self.shift is not None:
            attributes[SHIFT] = self.shift
        if self.as_of is not None:
            attributes[AS_OF] = str(self.as_of)
        return attributes


def metric_group(window: str) -> str:
    """``group`` of the metric batches of a window kind: ``metrics:15m``, ``metrics:shift``."""
    return GROUP_PREFIX + window


def metric_info(batch: SampleBatch) -> MetricInfo | None:
    """The metric view of ``batch``, or ``None`` for any other batch.

    An ordinary batch has no attributes: it costs one truth test here, so the sinks may
    ask for every batch they deliver.
    """
    attributes = batch.attributes
    if not attributes or attributes.get(KIND) != KIND_METRICS:
        return None
    try:
        bounds: tuple[int, int] | None = (
            int(attributes[WINDOW_START]),
            int(attributes[WINDOW_END]),
        )
    except (KeyError, ValueError):
        bounds = None
    as_of = attributes.get(AS_OF)
    if as_of is not None:
        try:
            known: int | None = int(as_of)
        except ValueError:
            known = None  # not written by this agent: taken as a closed window's figure
    else:
        known = None
    return MetricInfo(
        attributes.get(FAMILY, ""),
        attributes.get(WINDOW, ""),
        bounds,
        attributes.get(SHIFT),
        known,
    )


def known_at_ns(info: MetricInfo, timestamp_ns: int) -> int:
    """When the values of a metric batch (``info``, stamped ``timestamp_ns``) were known:
    ``as_of`` for a running window's figure, else the window's end (a closed window's
    figure exists only once the window is over), else the batch time (no readable
    window)."""
    if info.as_of is not None:
        return info.as_of
    if info.bounds is not None:
        return info.bounds[1]
    return timestamp_ns


class EventInfo(NamedTuple):
    """What an event batch says about itself (docs/METRICS.md, "Demand guard and events").

    ``event``: its type (``demand_limit``, ``idle_energy``, ``meter_stalled``...),
    ``severity``: info, warning or critical, ``state``: start or end.
    """

    event: str
    severity: str
    state: str


def event_attributes(event: str, severity: str, state: str) -> dict[str, str]:
    """The attributes :func:`event_info` reads back."""
    return {KIND: KIND_EVENT, EVENT: event, SEVERITY: severity, STATE: state}


def event_info(batch: SampleBatch) -> EventInfo | None:
    """The event view of ``batch``, or ``None`` for any other batch (one truth test for
    an ordinary batch, as :func:`metric_info`)."""
    attributes = batch.attributes
    if not attributes or attributes.get(KIND) != KIND_EVENT:
        return None
    return EventInfo(
        attributes.get(EVENT, ""), attributes.get(SEVERITY, ""), attributes.get(STATE, "")
    )


class ReportInfo(NamedTuple):
    """What a report batch says about itself: ``daily`` or ``shift``, its local day
    (``2026-12-04``) and, for a shift report, the shift's name."""

    report: str
    day: str
    shift: str | None = None


def report_attributes(report: str, day: str, shift: str | None = None) -> dict[str, str]:
    """The attributes :func:`report_info` reads back."""
    attributes = {KIND: KIND_REPORT, REPORT: report, DAY: day}
    if shift is not None:
        attributes[SHIFT] = shift
    return attributes


def report_info(batch: SampleBatch) -> ReportInfo | None:
    """The report view of ``batch``, or ``None`` for any other batch."""
    attributes = batch.attributes
    if not attributes or attributes.get(KIND) != KIND_REPORT:
        return None
    return ReportInfo(attributes.get(REPORT, ""), attributes.get(DAY, ""), attributes.get(SHIFT))

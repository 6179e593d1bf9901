"""Daily and per-shift energy reports, built from the metric batches of one close pass.

The processor hands the reporter every metric batch a close pass produced
(:meth:`~edge_agent.metrics.processor.MetricsProcessor.close_due`): all units close a
window of a kind in the same pass (they share its end and the grace), and the pass
closes the kinds in order, so when it returns, every batch of a closing ``1d`` (or
``shift``) window is in hand: meters, machines, the plant total, the families other
parts add (tariff, carrier, savings, baseline). A report never waits across passes,
and so keeps no state: a restart cannot leave half a report behind.

What is in a report is read from the batches by family and name only
(:func:`~edge_agent.metrics.contract.metric_info`, :mod:`.report_figures`): every
value is the one the metric batch carries, with its quality and reason, and a figure
appears exactly when its family was published for the window. Each figure carries the
coverage of the window it was computed over. A report built on gaps says so: a device
covered less than :data:`COMPLETE_COVERAGE` of the window gets a plain note and makes
the report's status ``partial`` ("coverage 95% on line-meter: 5% of the window has no
data"; below ``metrics.min_coverage``, where its figures are published uncertain:
"coverage 62% on line-meter: figures are lower bounds").

The report goes out as one batch (docs/METRICS.md, "The report batch"): ``kind
report``, group ``reports``, device = the plant, one string value ``report`` holding
the JSON document; the sinks publish it (MQTT ``edge/{plant}/reports/{report}``,
retained). :mod:`.report_files` keeps it as JSON, CSV and HTML in the state directory.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import structlog

from edge_agent.metrics.contract import REPORTS_GROUP, metric_info, report_attributes
from edge_agent.metrics.report_figures import CURRENCY, EPOCH_S, coverage_of, match
from edge_agent.metrics.windows import DAY, NS_PER_S, SHIFT
from edge_agent.model import Quality, SampleBatch

log = structlog.get_logger("edge_agent.metrics")

#: The one value's name of a report batch (its attributes and group: contract.py).
REPORT_VALUE: Final = "report"
DAILY: Final = "daily"
SHIFTLY: Final = "shift"
#: Report kind by window kind.
REPORT_OF_WINDOW: Final = {DAY: DAILY, SHIFT: SHIFTLY}
#: Version of the report document's shape (``format``).
FORMAT: Final = 1

STATUS_COMPLETE: Final = "complete"
#: A report is ``complete`` only when every device was covered this share of the window
#: (a day may miss 86 s, a shift of 8 hours 29 s: a reconnect, not a gap).
COMPLETE_COVERAGE: Final = 0.999
STATUS_PARTIAL: Final = "partial"
STATUS_NO_DATA: Final = "no_data"

Document = dict[str, Any]


class ReportSink(Protocol):
    """Where reports are kept (:class:`~edge_agent.metrics.report_files.ReportFiles`)."""

    def write(self, document: Document) -> tuple[Document, bool]:
        """Keep ``document``; return it as kept and whether it differs from the copy
        kept before (True when there was none, or it could not be read)."""
        ...


def local_text(t_ns: int, zone: ZoneInfo) -> str:
    """``2026-12-04T10:15:00+08:00``: a time as the plant reads it."""
    return dt.datetime.fromtimestamp(t_ns / NS_PER_S, zone).isoformat(timespec="seconds")


def report_stem(document: Document) -> str:
    """The report's file name without suffix: ``2026-12-04``, ``2026-12-04-night``."""
    shift = document.get("shift")
    return str(document["day"]) + (f"-{shift}" if shift else "")


def report_batch(document: Document) -> SampleBatch:
    """The report batch of ``document`` (docs/METRICS.md, "The report batch")."""
    attributes = report_attributes(
        document["report"], document["day"], document.get("shift") or None
    )
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return SampleBatch(
        device=document["plant"],
        group=REPORTS_GROUP,
        timestamp_ns=int(document["start_s"] * NS_PER_S),
        names=(REPORT_VALUE,),
        values=[text],
        qualities=[Quality.GOOD],
        reasons=[""],
        attributes=attributes,
    )


def content(document: Document) -> Document:
    """The document without when it was made: two of equal content are the same report."""
    return {key: value for key, value in document.items() if key != "generated_at"}


class Reporter:
    """Builds the reports of the report windows of a close pass (see the module docstring)."""

    def __init__(
        self,
        plant: str,
        timezone: str,
        *,
        daily: bool,
        shift: bool,
        min_coverage: float,
        site: str = "",
        files: ReportSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plant = plant
        self.site = site
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.windows = frozenset(w for w, on in ((DAY, daily), (SHIFT, shift)) if on)
        self.min_coverage = min_coverage
        self.files = files
        self._clock = clock

    def __call__(self, closed: Sequence[SampleBatch]) -> list[SampleBatch]:
        """The report batches of every report window closed in ``closed`` (one pass).

        A report whose kept copy has the same content is kept again but not sent again
        (why that loses nothing: docs/METRICS.md, "Reports").
        """
        windows: dict[tuple[str, int, int, str | None], list[SampleBatch]] = {}
        now_ns = round(self._clock() * NS_PER_S)
        for batch in closed:
            info = metric_info(batch)
            if info is None or info.bounds is None or info.window not in self.windows:
                continue
            if info.bounds[1] > now_ns:
                # A window not yet over (a baseline fitted at start is published with
                # today's bounds): its report is made when it closes, not from this.
                continue
            key = (info.window, info.bounds[0], info.bounds[1], info.shift)
            windows.setdefault(key, []).append(batch)
        out: list[SampleBatch] = []
        for (window, start_ns, end_ns, shift), batches in windows.items():
            document = self.build(window, start_ns, end_ns, shift, batches)
            changed = True
            if self.files is not None:
                document, changed = self.files.write(document)
            if changed:
                out.append(report_batch(document))
            log.info(
                "energy report made",
                report=document["report"],
                day=document["day"],
                shift=shift,
                status=document["status"],
                sent=changed,
            )
        return out

    def build(
        self,
        window: str,
        start_ns: int,
        end_ns: int,
        shift: str | None,
        batches: Sequence[SampleBatch],
    ) -> Document:
        """The report document of one window from its metric batches."""
        devices = _devices(batches, self.plant, self.zone)
        notes: list[str] = []
        coverages = [d["coverage"] for d in devices if d["coverage"] is not None]
        for device in devices:
            coverage = device["coverage"]
            if coverage is None or coverage >= COMPLETE_COVERAGE:
                continue
            name = device["device"]
            if coverage == 0:
                notes.append(f"no data on {name}: its figures are missing")
            elif coverage < self.min_coverage:
                notes.append(f"coverage {_percent(coverage)} on {name}: figures are lower bounds")
            else:
                missing = _percent(1 - coverage, up=True)
                notes.append(
                    f"coverage {_percent(coverage)} on {name}: {missing} of the window has no data"
                )
        if not coverages or max(coverages) == 0:
            status = STATUS_NO_DATA
        elif notes:
            status = STATUS_PARTIAL
        else:
            status = STATUS_COMPLETE
        return {
            "format": FORMAT,
            "report": REPORT_OF_WINDOW[window],
            "plant": self.plant,
            "site": self.site,
            "day": dt.datetime.fromtimestamp(start_ns / NS_PER_S, self.zone).date().isoformat(),
            "shift": shift,
            "timezone": self.timezone,
            "start": local_text(start_ns, self.zone),
            "end": local_text(end_ns, self.zone),
            "start_s": start_ns / NS_PER_S,
            "end_s": end_ns / NS_PER_S,
            "generated_at": local_text(round(self._clock() * NS_PER_S), self.zone),
            "status": status,
            "coverage": min(coverages) if coverages else None,
            "min_coverage": self.min_coverage,
            "notes": notes,
            "devices": devices,
        }


def _percent(ratio: float, *, up: bool = False) -> str:
    """``62%``: coverage rounded down, so that a note never claims more data than there
    was (and a gap never disappears in a rounded-up ``100%``); a missing share rounded
    ``up`` for the same reason; one decimal under 10 %."""
    value = round(ratio * 100, 6)  # 0.29 * 100 is 28.999999999999996
    rounding = math.ceil if up else math.floor
    if value < 10:
        return f"{rounding(value * 10) / 10:.1f}%"
    return f"{rounding(value)}%"


_ROLE_ORDER: Final = {"plant": 0, "meter": 1, "machine": 2, "baseline": 3}


def _devices(batches: Sequence[SampleBatch], plant: str, zone: ZoneInfo) -> list[Document]:
    """Each device's figures, the plant total first, then meters, machines, baselines in
    the order the pass closed them (the plant file's order)."""
    by_device: dict[str, list[tuple[str, SampleBatch]]] = {}
    for batch in batches:
        info = metric_info(batch)
        assert info is not None
        by_device.setdefault(batch.device, []).append((info.family, batch))
    devices: list[Document] = []
    for device, found in by_device.items():
        families = {family for family, _ in found}
        own = _coverages(found)
        fallback = next((own[f] for f in ("energy", "carrier", "utilization") if f in own), None)
        rows: list[tuple[tuple[int, int], Document]] = []
        for family, batch in found:
            coverage = own.get(family, fallback)
            for name, value, quality, reason in batch:
                matched = match(family, name)
                if matched is None:
                    continue
                unit = matched.unit
                if unit == CURRENCY or (family == "carrier" and not unit):
                    # The batch says it (tariff: its currency; carrier: its amount's unit).
                    unit = batch.attributes.get(CURRENCY if unit else "unit") or unit
                figure: Document = {
                    "family": family,
                    "name": name,
                    "label": matched.en,
                    "label_zh": matched.zh,
                    "value": value,
                    "unit": unit,
                    "coverage": coverage,
                    "quality": quality.label,
                    "reason": reason,
                }
                if unit == EPOCH_S and isinstance(value, int | float):
                    figure["local_time"] = local_text(round(value * NS_PER_S), zone)
                rows.append((matched.order, figure))
        rows.sort(key=lambda row: row[0])
        devices.append(
            {
                "device": device,
                "role": _role(device, plant, families),
                "coverage": min(own.values()) if own else None,
                "figures": [figure for _, figure in rows],
            }
        )
    devices.sort(key=lambda d: _ROLE_ORDER[d["role"]])
    return devices


def _coverages(found: Sequence[tuple[str, SampleBatch]]) -> dict[str, float]:
    """Coverage by family, where the family publishes one (energy, carrier, utilization)."""
    out: dict[str, float] = {}
    for family, batch in found:
        if not coverage_of(family):
            continue
        for name, value, _, _ in batch:
            if name == "coverage" and isinstance(value, int | float):
                out[family] = float(value)
    return out


def _role(device: str, plant: str, families: set[str]) -> str:
    if device == plant:
        return "plant"
    if families & {"savings", "baseline"}:
        return "baseline"
    if "utilization" in families:
        return "machine"
    return "meter"

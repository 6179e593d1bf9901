"""InfluxDB sink: line protocol over the v2 write API (InfluxDB 2.x/3.x, VictoriaMetrics...).

Line protocol is built straight from the batches (:mod:`edge_agent.sinks.line_protocol`)
and posted in chunks with influxdb-client's *synchronous* write API, on the sink's own
worker thread so the event loop never waits for HTTP. influxdb-client's batching
mode is not used: it reports failures only to a callback, after the fact, and
with Point objects it wrote about 28k points/s here against 311k for ready line
protocol. Batching, retry and backoff are the outbox's and the runner's.

What the server says decides what happens to a chunk:

* 2xx: delivered (the runner then advances this sink's cursor).
* 413 (too large): the chunk is split in halves until the server takes them, and
  later requests stay at the size that worked.
* 400 / 422 (malformed or unprocessable points, e.g. a field type conflict): the
  chunk is bisected to isolate the refused lines, which go to the outbox's
  dead-letter table with a log line; the rest is written. Resending the good lines
  is harmless: InfluxDB overwrites a point with the same series and timestamp.
* 429 / 503: :class:`~edge_agent.errors.SinkError` with the server's Retry-After,
  which the runner honours.
* anything else (401, 403, 404, 5xx, no connection, timeout): SinkError; the
  batches stay in the outbox and are retried with backoff.
"""

from __future__ import annotations

import email.utils
import enum
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

import structlog
import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS, WriteApi
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from edge_agent.config import InfluxSinkConfig, PlantConfig, TagCatalog
from edge_agent.config.catalog import DeviceInfo
from edge_agent.config.influx import QUALITY_SUFFIX, UNIT_TAG
from edge_agent.errors import SinkError
from edge_agent.metrics.contract import KIND, KIND_REPORT, EventInfo, event_info, metric_info
from edge_agent.model import SampleBatch
from edge_agent.sinks.line_protocol import (
    PRECISION_NS,
    batch_lines,
    field_keys,
    line_prefix,
    split_lines,
)
from edge_agent.worker import BlockingWorker

log = structlog.get_logger("edge_agent.sink.influxdb")

#: A Retry-After longer than this is capped (and the runner retries then).
MAX_RETRY_AFTER_S: Final = 300.0
#: Extra requests one send may spend isolating refused lines; beyond it, a failing
#: part goes to the dead letters whole (good lines with it) rather than stall delivery.
MAX_ISOLATION_REQUESTS: Final = 64
_PRECISION: Final = {
    "ns": WritePrecision.NS,
    "us": WritePrecision.US,
    "ms": WritePrecision.MS,
    "s": WritePrecision.S,
}
#: Layouts (measurement, tags, field keys) kept per stream. An OPC UA subscription
#: hands over whichever tags changed, so its batches name ever new sets of tags: the
#: cache starts over when full rather than grow without bound.
MAX_LAYOUTS: Final = 4096
#: Measurement of event batches (docs/INFLUXDB.md): tags plant, device, event, severity, state.
EVENTS_MEASUREMENT: Final = "events"


class DeadLetters(Protocol):
    """Where refused points go (the outbox)."""

    def dead_letter(self, sink: str, status: int, error: str, lines: bytes) -> None: ...


class InfluxState(enum.Enum):
    """Where the sink stands: nothing sent yet, the server answers, it does not, stopped."""

    IDLE = "idle"
    ANSWERING = "answering"
    FAILING = "failing"
    STOPPED = "stopped"


@dataclass(slots=True)
class _Layout:
    prefix: str
    keys: list[str]
    quality_keys: list[str]
    #: With more than one unit in a batch: (prefix with its ``unit`` tag, indexes of
    #: the values in that unit) per line; None: one line with ``prefix``.
    parts: list[tuple[str, list[int]]] | None = None


@dataclass(slots=True)
class _Refused:
    status: int
    error: str
    lines: list[str]


@dataclass(slots=True)
class _Budget:
    requests: int


class InfluxSink:
    """Writes sample batches to one InfluxDB v2 write endpoint (see docs/INFLUXDB.md)."""

    def __init__(
        self,
        config: InfluxSinkConfig,
        plant: PlantConfig,
        *,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.config = config
        self._plant = plant.plant.name
        self._devices = TagCatalog.of(plant.devices).devices
        self._dead_letters = dead_letters
        self._divisor = PRECISION_NS[config.precision]
        self._precision = _PRECISION[config.precision]
        self._lines_per_request = config.max_lines_per_request
        #: How long the runner waits for a tick's batches to join one request (Lingering).
        self.linger: float = config.flush_interval
        self._layouts: dict[tuple[Any, ...], _Layout] = {}
        self._worker = BlockingWorker(f"influxdb-{config.name}")
        self._client: InfluxDBClient | None = None
        self._write_api: WriteApi | None = None
        self._state = InfluxState.IDLE
        #: Points (lines) written, and refused for good (moved to the dead letters;
        #: RefusalCounting, for /metrics).
        self.lines_written = 0
        self.lines_refused = 0
        self._log = log.bind(sink=config.name, url=config.url, bucket=config.bucket)

    # ------------------------------------------------------------------ Sink protocol

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def connected(self) -> bool:
        """True when the last request reached the server and it answered."""
        return self._state is InfluxState.ANSWERING

    async def start(self) -> None:
        if self._state is InfluxState.STOPPED:
            raise RuntimeError(f"influxdb sink {self.name} was stopped; make a new one")
        if self._client is None:
            config = self.config
            if not config.verify_tls and config.url.lower().startswith("https:"):
                self._log.warning(
                    "influxdb TLS certificate verification is off: the server is not authenticated",
                )
                # Said once, above; urllib3 would say it again on every request.
                warnings.filterwarnings(
                    "ignore", category=urllib3.exceptions.InsecureRequestWarning
                )
            self._client = InfluxDBClient(
                url=config.url,
                token=config.token,
                org=config.org,
                timeout=int(config.timeout * 1000),
                enable_gzip=config.gzip,
                verify_ssl=config.verify_tls,
                ssl_ca_cert=str(config.ca_file) if config.ca_file else None,
            )
            self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    async def send(self, batches: Sequence[SampleBatch]) -> None:
        """Write ``batches``; return once the server confirmed every line (HTTP 2xx)."""
        if not batches:
            return
        if self._write_api is None:
            raise SinkError(f"influxdb sink {self.name}: not started")
        try:
            refused = await self._worker.call(self._deliver, list(batches))
        except SinkError:
            self._settle(InfluxState.FAILING)
            raise
        self._settle(InfluxState.ANSWERING)
        for part in refused:
            self.lines_refused += len(part.lines)
            self._log.error(
                "influxdb refused points for good; they are moved to the dead letters",
                status=part.status,
                error=part.error[:500],
                lines=len(part.lines),
                first_line=part.lines[0][:300],
            )
            if self._dead_letters is not None:
                body = "\n".join(part.lines).encode("utf-8", "replace")
                self._dead_letters.dead_letter(self.name, part.status, part.error, body)

    def _settle(self, state: InfluxState) -> None:
        """The outcome of a request; a sink stopped meanwhile stays stopped."""
        if self._state is not InfluxState.STOPPED:
            self._state = state

    async def stop(self) -> None:
        """Close the HTTP client and end the worker thread. Idempotent."""
        if self._state is InfluxState.STOPPED:
            return
        self._state = InfluxState.STOPPED
        client, self._client, self._write_api = self._client, None, None
        if client is not None:
            await self._worker.call(client.close)
        await self._worker.close()

    # ------------------------------------------------------------------ worker thread

    def _deliver(self, batches: list[SampleBatch]) -> list[_Refused]:
        lines: list[str] = []
        for batch in batches:
            if batch.attributes and batch.attributes.get(KIND) == KIND_REPORT:
                continue  # a report's figures are here already as metric batches: delivered
            layout = self._layout(batch)
            if layout.parts is None:
                lines.extend(
                    batch_lines(
                        batch, layout.prefix, layout.keys, layout.quality_keys, self._divisor
                    )
                )
            else:
                lines.extend(
                    split_lines(
                        batch, layout.parts, layout.keys, layout.quality_keys, self._divisor
                    )
                )
        refused: list[_Refused] = []
        budget = _Budget(MAX_ISOLATION_REQUESTS)
        start = 0
        while start < len(lines):
            size = self._lines_per_request
            self._write(lines[start : start + size], refused, budget)
            start += size
        return refused

    def _write(self, lines: list[str], refused: list[_Refused], budget: _Budget) -> None:
        try:
            self._post(lines)
            return
        except ApiException as exc:
            status = int(exc.status or 0)
            message = _message(exc)
            if status == 413:
                if len(lines) == 1:
                    refused.append(_Refused(status, message or "line too large", lines))
                    return
                half = (len(lines) + 1) // 2
                if half < self._lines_per_request:
                    self._lines_per_request = half
                    self._log.warning(
                        "influxdb refused a request as too large; writing smaller requests",
                        lines_per_request=half,
                    )
                self._write(lines[:half], refused, budget)
                self._write(lines[half:], refused, budget)
                return
            if status in (400, 422):
                if len(lines) == 1 or budget.requests < 2:
                    refused.append(_Refused(status, message, lines))
                    return
                budget.requests -= 2
                half = (len(lines) + 1) // 2
                self._write(lines[:half], refused, budget)
                self._write(lines[half:], refused, budget)
                return
            retry_after = _retry_after(exc) if status in (429, 503) else None
            answer = f"HTTP {status}: " if status else ""  # 0: the server never answered
            raise SinkError(
                f"influxdb sink {self.name}: {answer}{message}", retry_after=retry_after
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise SinkError(
                f"influxdb sink {self.name}: {type(exc).__name__}: {exc}"[:500]
            ) from exc

    def _post(self, lines: list[str]) -> None:
        assert self._write_api is not None
        body = "\n".join(lines).encode("utf-8", "replace")
        self._write_api.write(
            bucket=self.config.bucket,
            org=self.config.org,
            record=body,
            write_precision=cast(WritePrecision, self._precision),
        )
        self.lines_written += len(lines)

    def _layout(self, batch: SampleBatch) -> _Layout:
        info = metric_info(batch)
        event = None
        if info is None:
            family = window = shift = ""
            event = event_info(batch)
        else:
            family, window, shift = info.family, info.window, info.shift or ""
        key: tuple[Any, ...] = (batch.device, batch.group, family, window, shift)
        if event is not None:
            key += tuple(event)
        key += (tuple(batch.names),)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._make_layout(batch, family, window, shift, event)
            if len(self._layouts) >= MAX_LAYOUTS:
                self._layouts.clear()
            self._layouts[key] = layout
        return layout

    def _make_layout(
        self,
        batch: SampleBatch,
        family: str,
        window: str,
        shift: str,
        event: EventInfo | None = None,
    ) -> _Layout:
        config = self.config
        name_of = config.name_of
        info = self._devices.get(batch.device)
        tags = {name_of(k): v for k, v in config.tags.items()}
        if info is not None and config.labels_as_tags:
            tags.update((name_of(k), v) for k, v in info.labels.items())
        tags["plant"] = self._plant
        tags["device"] = batch.device
        if family:
            # A metric batch (edge_agent.metrics.contract): measurement = its family,
            # a window tag, timestamp = window start (the batch's timestamp); a shift
            # window also names its shift, as the MQTT payload does. Its values have
            # no tag's unit: their names say it (energy_kwh, mean_kw).
            measurement = family
            tags["window"] = window
            if shift:
                tags["shift"] = shift
        elif event is not None:
            # An event batch (edge_agent.metrics.contract): timestamp = its start or end.
            measurement = EVENTS_MEASUREMENT
            tags.update(event=event.event, severity=event.severity, state=event.state)
        else:
            measurement = config.measurement_of(info, batch.device)
            if config.group_tag:
                tags["group"] = batch.group
        names = [name_of(n) for n in batch.names]
        keys, quality_keys = field_keys(
            names, QUALITY_SUFFIX if config.quality == "field" else None
        )
        plain = not family and event is None
        units = _units(info, batch.names) if config.units == "tag" and plain else {}
        if len(units) <= 1:
            unit = next(iter(units), "")
            return _Layout(line_prefix(measurement, {**tags, UNIT_TAG: unit}), keys, quality_keys)
        parts = [
            (line_prefix(measurement, {**tags, UNIT_TAG: unit}), indexes)
            for unit, indexes in units.items()
        ]
        return _Layout(parts[0][0], keys, quality_keys, parts)


def _units(info: DeviceInfo | None, names: Sequence[str]) -> dict[str, list[int]]:
    """The indexes of the values of each unit ("" for none), in order of first use."""
    units: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        tag = info.tags.get(name) if info is not None else None
        units.setdefault(tag.unit if tag is not None else "", []).append(index)
    return units


def _message(exc: ApiException) -> str:
    if not exc.status:
        # No HTTP answer: influxdb-client puts the cause (a TLS failure) in ``reason`` and
        # "no response" in ``message``.
        reason = " ".join(str(exc.reason or "no response").split())
        if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason:
            return (
                f"the server's TLS certificate is not trusted ({reason}); give the CA that "
                "signed it as ca_file (verify_tls: false turns the check off, not advised)"
            )
        return reason
    message = getattr(exc, "message", None) or exc.reason or ""
    return str(message)


def _retry_after(exc: ApiException) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped."""
    headers: Any = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)

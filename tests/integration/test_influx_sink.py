"""InfluxDB sink over the wire: a real VictoriaMetrics, and a scripted endpoint for errors."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
import urllib.error
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edge_agent.backoff import Backoff
from edge_agent.errors import SinkError
from edge_agent.model import Quality, SampleBatch
from edge_agent.runtime.sink_runner import SinkRunner
from edge_agent.sinks.influxdb import InfluxSink
from tests.influx_support import ScriptedInflux, influx_config, plant_config
from tests.memory_buffer import MemoryBuffer
from tests.servers import VictoriaMetrics, free_port

pytestmark = pytest.mark.integration

T0_NS = 1_795_000_000_123_456_789
GOOD, UNCERTAIN, BAD = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD


class Letters:
    """Collects dead letters (the outbox's role in the agent)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, int, str, bytes]] = []

    def dead_letter(self, sink: str, status: int, error: str, lines: bytes) -> None:
        self.items.append((sink, status, error, lines))


def data_batch(seq: int = 0, device: str = "meter-1") -> SampleBatch:
    return SampleBatch(
        device=device,
        group="fast",
        timestamp_ns=T0_NS + seq * 1_000_000_000,
        names=("power", "count", "on", "label", "missing", "broken", "odd"),
        values=[12.5 + seq, 42 + seq, True, "run", None, 3.0, 7],
        qualities=[GOOD, GOOD, GOOD, GOOD, BAD, BAD, UNCERTAIN],
        reasons=["", "", "", "", "timeout", "sentinel", "unknown enum"],
    )


def metric_batch() -> SampleBatch:
    start = T0_NS - T0_NS % 900_000_000_000
    return SampleBatch(
        device="meter-1",
        group="metrics:15m",
        timestamp_ns=start,
        names=("energy_kwh", "coverage"),
        values=[12.25, None],
        qualities=[GOOD, GOOD],
        reasons=["", ""],
        attributes={
            "kind": "metrics",
            "family": "energy",
            "window": "15m",
            "window_start": str(start),
            "window_end": str(start + 900_000_000_000),
        },
    )


def stamped_batch() -> SampleBatch:
    """Per-value timestamps (as an OPC UA driver gives): one line per distinct stamp."""
    return SampleBatch(
        device="opc-1",
        group="sub",
        timestamp_ns=T0_NS,
        names=("a", "b", "c"),
        values=[1.0, 2.0, 3.0],
        qualities=[GOOD, GOOD, GOOD],
        reasons=["", "", ""],
        timestamps_ns=[T0_NS - 2_000_000, T0_NS, T0_NS - 2_000_000],
    )


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedInflux]:
    server = ScriptedInflux()
    await server.start()
    yield server
    await server.stop()


def stamp_requests(scripted: ScriptedInflux) -> list[float]:
    """The times at which requests reach ``scripted``, appended as they come."""
    times: list[float] = []
    original = scripted._answer

    def stamped(lines: list[str]) -> tuple[int, dict[str, str], bytes]:
        times.append(time.monotonic())
        return original(lines)

    scripted._answer = stamped  # type: ignore[method-assign]
    return times


async def _started(
    url: str, letters: Letters | None = None, *, units: bool = False, **overrides: Any
) -> InfluxSink:
    """A started sink; ``units``: the plant gives power a unit (kW) and count none."""
    sink = InfluxSink(influx_config(url, **overrides), plant_config(units), dead_letters=letters)
    await sink.start()
    return sink


def _series(victoria: VictoriaMetrics, name: str) -> dict[str, Any]:
    found = victoria.export(f'{{__name__="{name}"}}')
    assert len(found) == 1, (name, found)
    return found[0]


async def test_points_land_with_tags_fields_and_timestamps(victoria: VictoriaMetrics) -> None:
    sink = await _started(
        victoria.url, units=True, measurement="device_type", tags={"region": "east"}
    )
    try:
        await sink.send([data_batch(0), data_batch(1), metric_batch(), stamped_batch()])
        assert sink.connected
    finally:
        await sink.stop()

    # power-meter and cost,centre made safe for PromQL; tag values keep the real names.
    power = _series(victoria, "power_meter_power")
    assert power["metric"] == {
        "__name__": "power_meter_power",
        "plant": "plant-7",
        "device": "meter-1",
        "group": "fast",
        "line": "line 1",  # labels become tags, escaped on the way and read back intact
        "cost_centre": "a=b",
        "region": "east",
        "unit": "kW",
    }
    assert power["values"] == [12.5, 13.5]
    assert power["timestamps"] == [T0_NS // 1_000_000, T0_NS // 1_000_000 + 1000]
    count = _series(victoria, "power_meter_count")
    assert count["values"] == [42, 43]
    assert "unit" not in count["metric"], "a tag without a unit has no unit tag"
    assert _series(victoria, "power_meter_on")["values"] == [1, 1]
    assert _series(victoria, "power_meter_odd")["values"] == [7, 7]  # uncertain is written
    # A string field: VictoriaMetrics keeps the series but stores every value as 0
    # (docs/INFLUXDB.md); the label itself is lost there.
    assert _series(victoria, "power_meter_label")["values"] == [0, 0]
    # Bad samples (None, or a bad quality) are left out.
    assert victoria.export('{__name__=~"power_meter_(missing|broken)"}') == []

    energy = _series(victoria, "energy_energy_kwh")
    assert energy["metric"] == {
        "__name__": "energy_energy_kwh",
        "plant": "plant-7",
        "device": "meter-1",
        "window": "15m",
        "line": "line 1",
        "cost_centre": "a=b",
        "region": "east",
    }
    assert energy["timestamps"] == [int(metric_batch().attributes["window_start"]) // 1_000_000]
    assert victoria.export('{__name__="energy_coverage"}') == []

    # A device the plant does not know (its device_type neither): measurement = name.
    a = _series(victoria, "opc_1_a")
    assert a["timestamps"] == [(T0_NS - 2_000_000) // 1_000_000]
    assert _series(victoria, "opc_1_b")["timestamps"] == [T0_NS // 1_000_000]


def _at(seq: int) -> float:
    """A moment just after the ``seq``-th data batch, for an instant query."""
    return (T0_NS + seq * 1_000_000_000) / 1e9 + 0.5


async def test_promql_reads_the_default_names_unquoted(victoria: VictoriaMetrics) -> None:
    """The default (a measurement per device, names made safe) in PromQL as typed."""
    sink = await _started(victoria.url, units=True)
    try:
        await sink.send([data_batch(0), data_batch(0, device="meter.2"), data_batch(1)])
    finally:
        await sink.stop()
    [found] = victoria.query('meter_1_power{unit="kW"} * 1000', _at(1))
    assert found["metric"]["device"] == "meter-1"
    assert float(found["value"][1]) == 13500.0
    # "meter.2" is not in the plant: the same rule still applies to its name.
    [second] = victoria.query("meter_2_count", _at(0))
    assert second["metric"]["device"] == "meter.2"
    assert float(second["value"][1]) == 42.0
    # What the names as configured give: PromQL reads "meter-1_power" as a subtraction.
    assert victoria.query("meter_1_count - meter_1_count", _at(1)) != []


async def test_a_fixed_measurement_puts_every_device_in_one_metric(
    victoria: VictoriaMetrics,
) -> None:
    sink = await _started(victoria.url, measurement="edge")
    try:
        await sink.send([data_batch(0), data_batch(0, device="line-meter"), metric_batch()])
    finally:
        await sink.stop()
    found = victoria.query("sum by (device) (edge_power)", _at(0))
    assert {r["metric"]["device"]: float(r["value"][1]) for r in found} == {
        "meter-1": 12.5,
        "line-meter": 12.5,
    }
    [one] = victoria.query('edge_count{device="line-meter", group="fast"}', _at(0))
    assert float(one["value"][1]) == 42.0
    # Metric batches keep their family as the measurement.
    assert len(victoria.query("last_over_time(energy_energy_kwh[1h])", _at(0))) == 1


async def test_names_as_configured_with_safe_names_off(victoria: VictoriaMetrics) -> None:
    sink = await _started(victoria.url, units=True, safe_names=False)
    try:
        await sink.send([data_batch(0)])
    finally:
        await sink.stop()
    power = _series(victoria, "meter-1_power")
    assert power["metric"]["cost,centre"] == "a=b"
    assert power["metric"]["unit"] == "kW"
    # The trap safe names avoid: PromQL parses this as "meter - 1_power" and fails (or,
    # with a name that parses, silently subtracts two series that do not exist).
    with pytest.raises(urllib.error.HTTPError):
        victoria.query("meter-1_power", _at(0))
    assert victoria.query("meter - meter_power", _at(0)) == []


async def test_quality_as_field_and_gzip(victoria: VictoriaMetrics) -> None:
    sink = await _started(victoria.url, units=True, quality="field", gzip=True, group_tag=False)
    try:
        await sink.send([data_batch(0)])
    finally:
        await sink.stop()
    assert _series(victoria, "meter_1_power_q")["values"] == [0]
    assert _series(victoria, "meter_1_power_q")["metric"]["unit"] == "kW"
    assert _series(victoria, "meter_1_broken_q")["values"] == [2]
    assert _series(victoria, "meter_1_odd_q")["values"] == [1]
    assert victoria.export('{__name__="meter_1_broken"}') == []
    assert "group" not in _series(victoria, "meter_1_power")["metric"]


async def test_lines_as_sent(scripted: ScriptedInflux) -> None:
    sink = await _started(scripted.url, units=True, precision="ms", token="s3cret")
    try:
        await sink.send([data_batch(0)])
    finally:
        await sink.stop()
    (request,) = scripted.requests
    assert request.path.startswith("/api/v2/write?")
    assert "org=plant-org" in request.path
    assert "bucket=edge" in request.path
    assert "precision=ms" in request.path
    assert request.headers["authorization"] == "Token s3cret"
    tags = "cost_centre=a\\=b,device=meter-1,group=fast,line=line\\ 1,plant=plant-7"
    assert request.lines == [
        f"meter_1,{tags},unit=kW power=12.5 {T0_NS // 1_000_000}",
        f'meter_1,{tags} count=42i,on=true,label="run",odd=7i {T0_NS // 1_000_000}',
    ]


async def test_retry_after_is_honoured_by_the_runner(scripted: ScriptedInflux) -> None:
    scripted.script = [(429, "1"), (503, "1")]
    sink = await _started(scripted.url)
    try:
        with pytest.raises(SinkError) as raised:
            await sink.send([data_batch(0)])
    finally:
        await sink.stop()
    assert raised.value.retry_after == 1.0

    sink = InfluxSink(influx_config(scripted.url), plant_config())
    buffer = MemoryBuffer(10)
    runner = SinkRunner(sink, buffer, backoff=Backoff(initial=0.01, cap=0.01, minimum=0.01))
    buffer.append(data_batch(1))
    times = stamp_requests(scripted)
    task = asyncio.create_task(runner.run())
    try:
        await _until(lambda: len(buffer) == 0, 10)
    finally:
        task.cancel()
        await asyncio.wait({task})
        await sink.stop()
    assert [r.status for r in scripted.requests[-2:]] == [503, 204]
    # The backoff alone would have retried after 10 ms; the server asked for 1 s.
    assert times[-1] - times[-2] >= 0.9
    assert runner.counters.send_failures == 1


async def test_a_request_too_large_is_split(scripted: ScriptedInflux) -> None:
    scripted.max_lines = 3
    sink = await _started(scripted.url)
    try:
        await sink.send([data_batch(i) for i in range(10)])
        first = len(scripted.requests)
        await sink.send([data_batch(i) for i in range(10, 16)])
    finally:
        await sink.stop()
    sent = [line.split(",", 1)[1].rsplit(" ", 1)[1] for line in scripted.accepted]
    assert sent == [str(T0_NS + i * 1_000_000_000) for i in range(16)]
    assert scripted.requests[0].status == 413
    # Later requests stay small: no 413 on the second send.
    assert all(r.status == 204 and len(r.lines) <= 3 for r in scripted.requests[first:])


async def test_refused_points_go_to_the_dead_letters_and_the_rest_is_written(
    scripted: ScriptedInflux,
) -> None:
    scripted.refuse_marker = "BAD-"
    letters = Letters()
    sink = await _started(scripted.url, letters)
    batches = [data_batch(i, device="BAD-x" if i in (3, 11) else "meter-1") for i in range(16)]
    try:
        await sink.send(batches)  # returns: the queue is not blocked by two bad points
    finally:
        await sink.stop()
    assert len(scripted.accepted) == 14
    assert not any("BAD-" in line for line in scripted.accepted)
    refused = [line for _, _, _, lines in letters.items for line in lines.decode().split("\n")]
    sent_bad = {line for r in scripted.requests for line in r.lines if "BAD-" in line}
    assert len(sent_bad) == 2
    assert sorted(refused) == sorted(sent_bad)
    assert all(sink_name == "tsdb" and status == 400 for sink_name, status, _, _ in letters.items)
    assert "unable to parse" in letters.items[0][2]
    assert sink.lines_refused == 2


async def test_server_errors_and_no_server_are_retryable() -> None:
    port = free_port()  # nothing listens there
    sink = await _started(f"http://127.0.0.1:{port}", timeout=2.0)
    try:
        with pytest.raises(SinkError) as raised:
            await sink.send([data_batch(0)])
        assert raised.value.retry_after is None
        assert not sink.connected
    finally:
        await sink.stop()


async def test_unauthorized_is_retryable_not_dead_lettered(scripted: ScriptedInflux) -> None:
    scripted.script = [(401, None)]
    letters = Letters()
    sink = await _started(scripted.url, letters)
    try:
        with pytest.raises(SinkError, match="HTTP 401"):
            await sink.send([data_batch(0)])
        await sink.send([data_batch(0)])
    finally:
        await sink.stop()
    assert letters.items == []
    assert len(scripted.accepted) == 1


async def _until(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _one_tick(buffer: MemoryBuffer, devices: int, tick: int) -> None:
    """The batches of one poll tick, their reads finishing 2 ms apart."""
    for i in range(devices):
        buffer.append(data_batch(tick, device=f"meter-{i}"))
        await asyncio.sleep(0.002)


@pytest.mark.parametrize(("flush_interval", "one_request_per_tick"), [(0.2, True), (0.0, False)])
async def test_one_request_per_poll_tick(
    scripted: ScriptedInflux, flush_interval: float, one_request_per_tick: bool
) -> None:
    sink = InfluxSink(influx_config(scripted.url, flush_interval=flush_interval), plant_config())
    buffer = MemoryBuffer(100)
    runner = SinkRunner(sink, buffer)
    task = asyncio.create_task(runner.run())
    arrivals = stamp_requests(scripted)
    try:
        for tick in range(3):
            first = time.monotonic()
            await _one_tick(buffer, 20, tick)
            await _until(lambda: len(buffer) == 0, 5)
            # Nothing waits past the linger (plus the request itself).
            assert arrivals[-1] - first < flush_interval + 0.04 + 0.3
            await asyncio.sleep(0.3)
    finally:
        task.cancel()
        await asyncio.wait({task})
        await sink.stop()
    assert len(scripted.accepted) == 60
    if one_request_per_tick:
        assert len(scripted.requests) == 3
    else:
        assert len(scripted.requests) > 10


@pytest.fixture
def self_signed(tmp_path: Path) -> Path:
    """A certificate (cert.pem, key.pem) that no CA store trusts."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    return tmp_path


@pytest.fixture
async def untrusted_https(self_signed: Path) -> AsyncIterator[str]:
    """An HTTPS listener with that certificate, which hangs up on every request."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(self_signed / "cert.pem", self_signed / "key.pem")

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
    try:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_untrusted_certificate_is_named_as_such(untrusted_https: str) -> None:
    sink = await _started(untrusted_https, timeout=2.0)
    try:
        with pytest.raises(SinkError) as raised:
            await sink.send([data_batch(0)])
    finally:
        await sink.stop()
    message = str(raised.value)
    assert "TLS certificate is not trusted" in message
    assert "ca_file" in message
    assert "HTTP 0" not in message
    assert "no response" not in message


async def test_verification_off_is_warned_about_once(untrusted_https: str) -> None:
    with capture_logs() as logs:
        sink = await _started(untrusted_https, timeout=2.0, verify_tls=False)
        try:
            for _ in range(2):  # the server hangs up: no answer, but no TLS complaint
                with pytest.raises(SinkError) as raised:
                    await sink.send([data_batch(0)])
                assert "not trusted" not in str(raised.value)
        finally:
            await sink.stop()
    warned = [e for e in logs if "verification is off" in e["event"]]
    assert len(warned) == 1
    assert warned[0]["log_level"] == "warning"


async def test_a_stopped_sink_stays_stopped(scripted: ScriptedInflux) -> None:
    sink = await _started(scripted.url)
    await sink.send([data_batch(0)])
    assert sink.connected
    await sink.stop()
    assert not sink.connected
    with pytest.raises(RuntimeError, match="was stopped"):
        await sink.start()

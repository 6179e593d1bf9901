"""Outbox benchmark: append rate per fsync policy, and replay rate into VictoriaMetrics.

``python -m bench.bench_outbox`` (needs the ``victoria-metrics`` binary for the replay).

* append: batches of 20 samples (the size of a typical poll group) appended the way
  pollers do, many per event-loop turn, until every one is committed to the file.
  Reported per fsync policy, with the share of that time spent on the event loop.
* checksum and rows: the row checksum alone (CRC-32, once per row written and once per
  row read back), and a group commit / a backlog read at the store, per row: the
  checksum's share of the outbox's own work.
* read back: a backlog already in the file read back by a sink's view and
  acknowledged at once (no sink): the outbox's own cost of a replay, each row's
  checksum checked and its body decoded.
* replay: a backlog already in the file (the sink was down) drained through the
  InfluxDB sink into a local VictoriaMetrics with ``replay_rate: 0`` (unpaced), as
  after an outage; the count that arrived is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from edge_agent.config import InfluxSinkConfig, OutboxConfig
from edge_agent.config.loader import parse_config
from edge_agent.model import Quality, SampleBatch
from edge_agent.outbox import Outbox
from edge_agent.outbox.codec import encode_body, row_crc
from edge_agent.outbox.store import OutboxStore
from edge_agent.runtime.sink_runner import SinkRunner
from edge_agent.sinks.influxdb import InfluxSink

SAMPLES_PER_BATCH = 20
DEVICES = 10
NAMES = tuple(f"v{i}" for i in range(SAMPLES_PER_BATCH))


def make_batches(count: int, start_ns: int) -> list[SampleBatch]:
    good = [Quality.GOOD] * SAMPLES_PER_BATCH
    return [
        SampleBatch(
            device=f"dev-{i % DEVICES}",
            group="fast",
            timestamp_ns=start_ns + (i // DEVICES) * 1_000_000_000,
            names=NAMES,
            values=[float(i) + k * 0.125 for k in range(SAMPLES_PER_BATCH - 2)] + [i, True],
            qualities=list(good),
            reasons=[""] * SAMPLES_PER_BATCH,
        )
        for i in range(count)
    ]


async def bench_append(folder: Path, fsync: str, count: int, per_turn: int) -> tuple[float, float]:
    """(samples/s until committed, µs of event-loop time per batch); ``per_turn`` batches
    are appended per event-loop turn (pollers of many devices firing on one tick)."""
    batches = make_batches(count, 1_700_000_000_000_000_000)
    config = OutboxConfig(fsync=fsync, max_bytes="8GiB")  # type: ignore[arg-type]
    outbox = Outbox(config, folder / f"append-{fsync}-{per_turn}.sqlite3", ["sink"])
    await outbox.start()
    loop_time = 0.0
    start = time.perf_counter()
    for offset in range(0, count, per_turn):
        t = time.perf_counter()
        for batch in batches[offset : offset + per_turn]:
            outbox.append(batch)
        loop_time += time.perf_counter() - t
        await asyncio.sleep(0)
    await outbox.flush()
    elapsed = time.perf_counter() - start
    await outbox.close()
    return count * SAMPLES_PER_BATCH / elapsed, loop_time / count * 1e6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_victoria(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            f"-storageDataPath={folder / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1).read()
            return process, url
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("victoria-metrics did not start")


def _stored(url: str, series: str) -> int:
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=30).read()
    query = urllib.parse.urlencode({"match[]": series})
    body = urllib.request.urlopen(f"{url}/api/v1/export?{query}", timeout=60).read()
    return sum(len(json.loads(line)["values"]) for line in body.splitlines() if line.strip())


def bench_checksum(count: int = 200_000) -> tuple[float, int]:
    """(µs to checksum one row, the row's body size): the bench's 20-sample batch."""
    body = encode_body(make_batches(1, 1_700_000_000_000_000_000)[0])
    start = time.perf_counter()
    for i in range(count):
        row_crc(i, i, i, 1, SAMPLES_PER_BATCH, body)
    return (time.perf_counter() - start) / count * 1e6, len(body)


def bench_store(folder: Path, count: int) -> tuple[float, float]:
    """(µs per row of one group commit of ``count`` rows, µs per row read back), at the
    store (no event loop), best of three."""
    batches = make_batches(count, 1_730_000_000_000_000_000)
    runs = []
    for attempt in range(3):
        store = OutboxStore(folder / f"store-{attempt}.sqlite3", "interval")
        store.open(["sink"])
        start = time.perf_counter()
        store.flush([(i + 1, i, b) for i, b in enumerate(batches)], [], 0, [])
        written = time.perf_counter() - start
        start, first = time.perf_counter(), 1
        while first <= count:
            _, examined = store.read(first, count, 250, 1 << 62)
            first = examined + 1
        read = time.perf_counter() - start
        store.close()
        runs.append((written / count * 1e6, read / count * 1e6))
    return min(r[0] for r in runs), min(r[1] for r in runs)


async def bench_read(folder: Path, count: int, per_send: int) -> float:
    """Samples/s read back from a backlog on disk by a view (no sink behind it)."""
    path = folder / "read.sqlite3"
    config = OutboxConfig(fsync="interval", max_bytes="8GiB", replay_rate=0)
    outbox = Outbox(config, path, ["sink"])
    await outbox.start()
    for batch in make_batches(count, 1_720_000_000_000_000_000):
        outbox.append(batch)
    await outbox.close()
    outbox = Outbox(config, path, ["sink"])
    await outbox.start()
    view = outbox.view("sink")
    start = time.perf_counter()
    while len(view):
        items = await view.peek(per_send)
        view.ack(items[-1].seq)
    elapsed = time.perf_counter() - start
    await outbox.close()
    return count * SAMPLES_PER_BATCH / elapsed


async def bench_replay(folder: Path, count: int, per_send: int) -> float:
    """Samples/s from a backlog on disk into VictoriaMetrics."""
    path = folder / "replay.sqlite3"
    config = OutboxConfig(fsync="interval", max_bytes="8GiB", replay_rate=0)
    outbox = Outbox(config, path, ["tsdb"])
    await outbox.start()
    for batch in make_batches(count, 1_710_000_000_000_000_000):
        outbox.append(batch)
    await outbox.close()

    process, url = _start_victoria(folder)
    try:
        plant = parse_config(
            "plant: {name: bench}\ndevices:\n  - {name: x, driver: modbus, connection: "
            "{transport: tcp, host: 127.0.0.1}, poll_groups: [{interval: 1s, tags: "
            "[{name: a, address: 0}]}]}\n",
            "bench.yaml",
            env={},
        )
        sink = InfluxSink(
            InfluxSinkConfig(name="tsdb", type="influxdb", url=url, org="o", bucket="b"), plant
        )
        outbox = Outbox(config, path, ["tsdb"])
        await outbox.start()
        view = outbox.view("tsdb")
        assert len(view) == count
        runner = SinkRunner(sink, view, max_batches_per_send=per_send)
        start = time.perf_counter()
        task = asyncio.create_task(runner.run())
        while len(view):
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        task.cancel()
        await asyncio.wait({task})
        await sink.stop()
        await outbox.close()
        per_series = _stored(url, '{__name__="dev_0_v0"}')  # dev-0 made safe for PromQL
        assert per_series == count // DEVICES, (per_series, count // DEVICES)
        return count * SAMPLES_PER_BATCH / elapsed
    finally:
        process.terminate()
        process.wait(30)


async def main(append_batches: int, replay_batches: int, per_send: int) -> dict[str, Any]:
    """Print the rates and return them (samples/s; µs of loop time per batch)."""
    out: dict[str, Any] = {"samples_per_batch": SAMPLES_PER_BATCH, "append": []}
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        folder = Path(tmp)
        for fsync in ("interval", "always"):
            for per_turn in (100, 1):
                rate, loop_us = await bench_append(folder, fsync, append_batches, per_turn)
                print(
                    f"append, fsync {fsync:<8}, {per_turn:>3} batch(es) per loop turn: "
                    f"{rate:>10,.0f} samples/s committed "
                    f"({loop_us:.1f} µs of loop time per {SAMPLES_PER_BATCH}-sample batch)",
                    flush=True,
                )
                out["append"].append(
                    {
                        "fsync": fsync,
                        "batches_per_turn": per_turn,
                        "samples_per_s": round(rate),
                        "loop_us_per_batch": round(loop_us, 1),
                    }
                )
        crc_us, body = bench_checksum()
        write_us, read_us = bench_store(folder, append_batches)
        print(
            f"row checksum (CRC-32, {body}-byte body): {crc_us:.2f} µs, once per row written "
            f"({write_us:.1f} µs per row in a group commit) and once per row read back "
            f"({read_us:.1f} µs per row)",
            flush=True,
        )
        out["checksum"] = {
            "us_per_row": round(crc_us, 2),
            "body_bytes": body,
            "commit_us_per_row": round(write_us, 2),
            "read_us_per_row": round(read_us, 2),
        }
        rate = await bench_read(folder, replay_batches, per_send)
        print(
            f"read back from disk (no sink): {rate:>10,.0f} samples/s "
            f"({replay_batches * SAMPLES_PER_BATCH:,} samples, {per_send} batches per peek)",
            flush=True,
        )
        out["read"] = {"samples_per_s": round(rate), "batches_per_peek": per_send}
        rate = await bench_replay(folder, replay_batches, per_send)
        print(
            f"replay into VictoriaMetrics: {rate:>10,.0f} samples/s "
            f"({replay_batches * SAMPLES_PER_BATCH:,} samples, {per_send} batches per request)",
            flush=True,
        )
        out["replay"] = {
            "samples_per_s": round(rate),
            "samples": replay_batches * SAMPLES_PER_BATCH,
            "batches_per_request": per_send,
        }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--append-batches", type=int, default=50_000)
    parser.add_argument("--replay-batches", type=int, default=50_000)
    parser.add_argument("--per-send", type=int, default=250)
    args = parser.parse_args()
    asyncio.run(main(args.append_batches, args.replay_batches, args.per_send))

"""1,000 OPC UA nodes through the agent, beside a bare asyncua client doing the same work.

Run from the repository root: ``python -m bench.bench_opcua [--seconds 8]``.

The OPC UA simulator runs in a child process (``python -m simulators -c PROFILE``)
with 1,000 Double nodes, so that server and client do not share one event loop.
Two measurements, each against the same server:

* read mode: bulk Reads of all 1,000 nodes back to back. The floor is
  ``Client.read_values(nodes)`` in a loop; the agent is a ``SourceRunner`` polling
  an ``OpcUaDriver`` read group (values, qualities, both timestamps, one SampleBatch
  per poll, through the pipeline). Figure: values per second.
* subscribe mode: 1,000 monitored items, the server changing every node every
  100 ms (10,000 changes/s offered). The floor is asyncua's subscription handler
  counting ``datachange_notification`` calls; the agent is the subscribe group
  handed over by the ``SourceRunner`` every 100 ms. Figure: notifications per second.

Figures go to docs/BENCHMARKS.md with this command. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from asyncua import Client, ua

from drivers.opcua import build_opcua_drivers
from edge_agent.config.loader import parse_config
from edge_agent.model import SampleBatch
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.runtime.source_runner import SourceRunner
from simulators.opcua_server import NAMESPACE_URI, bulk_name

NODES = 1000
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(update_interval: float, nodes: int = NODES) -> AsyncIterator[str]:
    """The simulator with ``nodes`` bulk nodes in a child process; yields its endpoint."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as scratch:
        profile = Path(scratch) / "bench.yaml"
        profile.write_text(
            "name: bench\nservers:\n"
            f"  - {{name: bench, transport: opcua, port: {port}, endpoints: ['None'],\n"
            f"     bulk_nodes: {nodes}, update_interval: {update_interval}}}\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "simulators",
            "-c",
            str(profile),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    await writer.wait_closed()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.returncode is not None:
                        raise RuntimeError("the simulator did not start") from None
                    await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # let the first update of every node land
            yield f"opc.tcp://127.0.0.1:{port}"
        finally:
            process.terminate()
            await process.wait()


def _config(endpoint: str, mode: str, interval: str, state_dir: str, nodes: int) -> Any:
    tags = "\n".join(
        f"          - {{name: n{i:04d}, node: 'nsu={NAMESPACE_URI};s={bulk_name(i)}'}}"
        for i in range(nodes)
    )
    return parse_config(
        f"plant: {{name: bench}}\nstate_dir: {state_dir}\ndevices:\n"
        f"  - name: bulk\n    driver: opcua\n    endpoint: {endpoint}\n    poll_groups:\n"
        f"      - name: g\n        mode: {mode}\n        interval: {interval}\n        tags:\n"
        f"{tags}\n",
        "bench.yaml",
        env={},
    )


class Counter:
    def __init__(self) -> None:
        self.samples = 0
        self.good = 0

    def __call__(self, batch: SampleBatch) -> None:
        self.samples += len(batch)
        self.good += batch.good_count


Rate = tuple[float, float]


def _rate(values: int, started: float, cpu: float) -> Rate:
    """Values per second, and client CPU microseconds per value, since the marks."""
    elapsed = time.perf_counter() - started
    used = time.process_time() - cpu
    return values / elapsed, used / max(values, 1) * 1e6


async def floor_read(endpoint: str, seconds: float, nodes: int = NODES) -> Rate:
    async with Client(endpoint, timeout=10) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        handles = [client.get_node(ua.NodeId(bulk_name(i), ns)) for i in range(nodes)]
        await client.read_values(handles)
        reads = 0
        started, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            await client.read_values(handles)
            reads += 1
        return _rate(reads * nodes, started, cpu)


async def agent_read(endpoint: str, seconds: float, state_dir: str, nodes: int = NODES) -> Rate:
    (driver,) = build_opcua_drivers(_config(endpoint, "read", "1s", state_dir, nodes))
    pipeline = Pipeline()
    counter = Counter()
    pipeline.add_consumer(counter)
    runner = SourceRunner(driver, pipeline.emit)
    group = driver.groups[0]
    try:
        await runner.poll_once(group)  # connect, resolve, first read
        counter.samples = counter.good = 0
        started, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            await runner.poll_once(group)
        rate = _rate(counter.samples, started, cpu)
    finally:
        await driver.close()
    if counter.good != counter.samples:
        print(f"  warning: {counter.samples - counter.good} samples not good")
    return rate


class _Handler:
    def __init__(self) -> None:
        self.count = 0

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.count += 1


async def floor_subscribe(
    endpoint: str, seconds: float, nodes: int = NODES, interval_ms: int = 100
) -> Rate:
    async with Client(endpoint, timeout=10) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        handles = [client.get_node(ua.NodeId(bulk_name(i), ns)) for i in range(nodes)]
        handler = _Handler()
        subscription = await client.create_subscription(interval_ms, handler)
        await subscription.subscribe_data_change(handles, sampling_interval=interval_ms)
        await asyncio.sleep(2)  # past the initial values
        before = handler.count
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        rate = _rate(handler.count - before, started, cpu)
        await subscription.delete()
        return rate


async def agent_subscribe(
    endpoint: str, seconds: float, state_dir: str, nodes: int = NODES, interval_ms: int = 100
) -> Rate:
    interval = f"{interval_ms}ms"
    (driver,) = build_opcua_drivers(_config(endpoint, "subscribe", interval, state_dir, nodes))
    pipeline = Pipeline()
    counter = Counter()
    pipeline.add_consumer(counter)
    runner = SourceRunner(driver, pipeline.emit)
    task = asyncio.create_task(runner.run(), name="bench:runner")
    try:
        await asyncio.sleep(2)  # past connect and the initial values
        before = counter.samples
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        return _rate(counter.samples - before, started, cpu)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _paired(
    round_: int,
    floor: Callable[[], Awaitable[Rate]],
    agent: Callable[[], Awaitable[Rate]],
) -> tuple[Rate, Rate]:
    """One pair, floor first in even rounds and agent first in odd ones: a server that
    warms up or a machine that gets busy during a round falls on both sides alike."""
    if round_ % 2 == 0:
        first = await floor()
        return first, await agent()
    second = await agent()
    return await floor(), second


def _line(floor: Rate, agent: Rate) -> str:
    return (
        f"  bare asyncua {floor[0]:8,.0f}/s ({floor[1]:5.1f} µs CPU each)   "
        f"agent {agent[0]:8,.0f}/s ({agent[1]:5.1f} µs CPU each)   "
        f"agent/floor {agent[0] / floor[0]:4.0%}"
    )


async def main(
    seconds: float, rounds: int, sizes: tuple[int, ...] = (NODES,)
) -> list[dict[str, Any]]:
    """Print and return one record per (size, mode, round).

    Subscribe mode offers 10,000 changes/s at every size: every node changes every
    100 ms at 1,000 nodes, every 1 s at 10,000 (the simulator, one Python process,
    cannot offer 100,000/s, and then it would be the bottleneck being measured).
    """
    # asyncua logs session-timeout revisions and the like at WARNING: not results.
    logging.basicConfig(level=logging.ERROR)
    records: list[dict[str, Any]] = []

    def keep(nodes: int, mode: str, floor: Rate, agent: Rate) -> None:
        print(_line(floor, agent), flush=True)
        records.append(
            {
                "nodes": nodes,
                "mode": mode,
                "floor_values_per_s": round(floor[0]),
                "floor_cpu_us_per_value": round(floor[1], 2),
                "agent_values_per_s": round(agent[0]),
                "agent_cpu_us_per_value": round(agent[1], 2),
                "agent_floor_cpu_ratio": round(agent[1] / floor[1], 2) if floor[1] else None,
            }
        )

    def failed(nodes: int, mode: str, exc: BaseException) -> None:
        # A simulator (one Python process) swamped by 10,000 nodes drops the session;
        # that is the simulator's limit, reported as such, not a figure of the agent.
        text = f"{type(exc).__name__}: {exc}"
        print(f"  {mode} at {nodes} nodes failed: {text} (the simulator is the bottleneck)")
        records.append({"nodes": nodes, "mode": mode, "error": text})

    def summarize(nodes: int, mode: str) -> None:
        """The figure of record: median and range over the rounds, and the load."""
        done = [
            r for r in records if r["nodes"] == nodes and r["mode"] == mode and "error" not in r
        ]
        if not done:
            return
        cpu = [r["agent_floor_cpu_ratio"] for r in done if r["agent_floor_cpu_ratio"]]
        rate = [r["agent_values_per_s"] / r["floor_values_per_s"] for r in done]
        load = os.getloadavg()[0]
        line = (
            f"  {len(done)} pairs: agent/floor CPU per value median {statistics.median(cpu):.2f}"
            f" (range {min(cpu):.2f}-{max(cpu):.2f}); throughput median"
            f" {statistics.median(rate):.0%} ({min(rate):.0%}-{max(rate):.0%}); load {load:.2f}"
        )
        print(line, flush=True)
        records.append(
            {
                "nodes": nodes,
                "mode": mode,
                "summary": {
                    "pairs": len(done),
                    "cpu_ratio_median": statistics.median(cpu),
                    "cpu_ratio_range": [min(cpu), max(cpu)],
                    "throughput_ratio_median": statistics.median(rate),
                    "throughput_ratio_range": [min(rate), max(rate)],
                    "load_average": load,
                },
            }
        )

    with tempfile.TemporaryDirectory() as state_dir:
        for nodes in sizes:
            print(f"read mode: bulk reads of {nodes} nodes, values/s (server updates every 1 s)")
            async with serve(update_interval=1.0, nodes=nodes) as endpoint:
                for round_ in range(rounds):
                    try:
                        floor, agent = await _paired(
                            round_,
                            partial(floor_read, endpoint, seconds, nodes),
                            partial(agent_read, endpoint, seconds, state_dir, nodes),
                        )
                    except (OSError, TimeoutError, ua.UaError) as exc:
                        failed(nodes, "read", exc)
                        break
                    keep(nodes, "read", floor, agent)
            summarize(nodes, "read")
            interval_ms = max(100, nodes // 10)
            print(
                f"subscribe mode: {nodes} monitored items, notifications/s "
                f"(all change every {interval_ms} ms)"
            )
            async with serve(update_interval=interval_ms / 1000, nodes=nodes) as endpoint:
                for round_ in range(rounds):
                    try:
                        floor, agent = await _paired(
                            round_,
                            partial(floor_subscribe, endpoint, seconds, nodes, interval_ms),
                            partial(
                                agent_subscribe, endpoint, seconds, state_dir, nodes, interval_ms
                            ),
                        )
                    except (OSError, TimeoutError, ua.UaError) as exc:
                        failed(nodes, "subscribe", exc)
                        break
                    keep(nodes, "subscribe", floor, agent)
            summarize(nodes, "subscribe")
    return records


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--nodes", default="1000", help="comma separated sizes")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.nodes.split(",") if n.strip())
    asyncio.run(main(args.seconds, args.rounds, sizes))

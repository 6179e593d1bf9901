"""What the web console costs when someone looks: its documents on a filled ring.

Run from the repository root: ``python -m bench.bench_console``. Builds the agent of the
benchmark plant (``--devices`` x ``--tags`` at 1 s, as ``python -m bench modbus-scale``),
fills the console's ring as its history would be (points per tag from ``history_memory``),
and times what a browser's live stream asks once a second: the plant document (every
device with its sparkline) and one device's document, each built and encoded as JSON,
plus the cost of keeping one batch (the ring's only work while nobody looks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import Callable
from typing import Any

import yaml

from bench.plant import PlantSpec, agent_document
from edge_agent.config.console import ConsoleConfig
from edge_agent.config.loader import parse_config
from edge_agent.console.ring import LiveRing, points_within
from edge_agent.console.views import Views
from edge_agent.model import Quality, SampleBatch
from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats

NS = 1_000_000_000


def _timed(build: Callable[[], Any], rounds: int) -> tuple[float, float, int]:
    """(ms to build, ms to encode, bytes) per call, best of ``rounds`` calls."""
    builds, encodes = [], []
    document = build()
    text = ""
    for _ in range(rounds):
        started = time.perf_counter()
        document = build()
        builds.append(time.perf_counter() - started)
        started = time.perf_counter()
        text = json.dumps(document, separators=(",", ":"))
        encodes.append(time.perf_counter() - started)
    return min(builds) * 1e3, min(encodes) * 1e3, len(text)


async def _run(devices: int, tags: int, rounds: int) -> None:
    spec = PlantSpec(devices, tags, 1.0)
    ports = {spec.device_name(i): 20_000 + i for i in range(devices)}
    with tempfile.TemporaryDirectory() as state:
        doc = agent_document(spec, ports, plant="bench", state_dir=state, sinks=[])
        agent = Agent(parse_config(yaml.safe_dump(doc), "bench.yaml", env={}))
        console = ConsoleConfig()
        points = points_within(console.history_memory, spec.total_tags, console.history_points)
        ring = LiveRing(console.history, points)
        batch = None
        for source in agent.sources:
            for group in source.driver.groups:
                for t in range(points):
                    n = len(group.names)
                    batch = SampleBatch(
                        source.device, group.name, t * NS, group.names,
                        [random.random() for _ in range(n)], [Quality.GOOD] * n, [""] * n,
                    )  # fmt: skip
                    ring.append(batch)
        views = Views(agent, ServiceStats(), ring)
        first = agent.sources[0].device
        print(f"{devices} devices x {tags} tags, {points} points per tag kept")
        for name, build in (
            ("plant document", views.plant),
            (f"device document ({tags} tags)", lambda: views.device(first, events=False)),
        ):
            made, encoded, size = _timed(build, rounds)
            print(f"  {name:<32} build {made:6.2f} ms  json {encoded:5.2f} ms  {size:,} bytes")
        assert batch is not None
        started = time.perf_counter()
        for _ in range(rounds * 100):
            ring.append(batch)
        per_batch = (time.perf_counter() - started) / (rounds * 100) * 1e6
        print(f"  keeping one batch of {tags} values   {per_batch:6.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_console", description=__doc__)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(_run(args.devices, args.tags, args.rounds))


if __name__ == "__main__":
    main()

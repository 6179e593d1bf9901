"""What the service runtime costs: a /metrics scrape, the status document, the poll overhead.

Run from the repository root: ``python -m bench.bench_service [--devices N]``. The
figures are synchronous work on the event loop (a scrape blocks polling for as long
as it takes), so they say how large a plant one gateway can expose at a given
scrape interval.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from functools import partial

from edge_agent.config.loader import parse_config
from edge_agent.histogram import Histogram
from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats, status_document, status_line
from edge_agent.service.telemetry import build_registry, render_metrics


def plant_text(devices: int, sinks: int) -> str:
    lines = ["plant: {name: bench}", "devices:"]
    for i in range(devices):
        lines += [
            f"  - name: d{i}",
            "    driver: modbus",
            f"    connection: {{transport: tcp, host: 10.0.{i // 250}.{i % 250}}}",
            "    poll_groups:",
            "      - {name: fast, interval: 1s, tags: [{name: v, address: 0}]}",
            "      - {name: slow, interval: 10s, tags: [{name: w, address: 1}]}",
        ]
    lines.append("sinks:")
    lines += [f"  - {{name: s{j}, type: mqtt, host: 127.0.0.1}}" for j in range(sinks)]
    return "\n".join(lines) + "\n"


def best_ms(action: Callable[[], object], runs: int) -> float:
    return min(timeit.Timer(action).repeat(repeat=5, number=runs)) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--sinks", type=int, default=2)
    args = parser.parse_args()

    histogram = Histogram()
    n = 200_000
    observe_ns = min(timeit.repeat(lambda: histogram.observe(0.0123), number=n, repeat=5)) / n
    print(f"read-latency histogram, one observation: {observe_ns * 1e9:.0f} ns")
    print("devices  /metrics ms  KiB  status document ms  STATUS= line ms")
    for count in args.devices:
        agent = Agent(parse_config(plant_text(count, args.sinks)))
        for source in agent.sources:  # realistic label sets: a few reasons, some reads
            source.counters.failures_by_reason.update({"timeout": 3, "exception code 2": 5})
            for seconds in (0.002, 0.02, 0.3):
                source.counters.read_seconds.observe(seconds)
        stats = ServiceStats()
        registry = build_registry(agent, stats)
        body, _ = render_metrics(registry)
        scrape = best_ms(partial(render_metrics, registry), 5)
        document = best_ms(partial(status_document, agent, stats), 50)
        line = best_ms(partial(status_line, agent, stats), 200)
        print(
            f"{count:7d}  {scrape:11.1f}  {len(body) / 1024:3.0f}  {document:18.2f}  {line:15.3f}"
        )


if __name__ == "__main__":
    main()

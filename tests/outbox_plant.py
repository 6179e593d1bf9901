"""End-to-end outbox tests: a small plant whose every poll is exactly one Modbus read.

press-1 (unit 3 of the line gateway) and compressor-1 (unit 1 of the utility server)
of the demo profile, each with one poll group whose tags the planner reads in one
request without a hole. So every read the simulator answers is one good batch, and
a test can compare the delivered count with :meth:`Plant.reads_served` exactly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edge_agent.backoff import Backoff
from edge_agent.service.agent import Agent
from simulators.modbus_server import UnitFault
from simulators.serve import Plant
from tests.mqtt_support import Received
from tests.servers import VictoriaMetrics

DEVICES = ("press-1", "compressor-1")
TOPIC_FILTER = "edge/demo-plant/+/data"


def plant_yaml(
    plant: Plant,
    state_dir: Path,
    *,
    interval: float,
    sinks: str,
    outbox: str = "{}",
) -> str:
    press_port = plant.port("line-gateway")
    compressor_port = plant.port("utility")
    return f"""
plant: {{name: demo-plant, site: test bench}}
state_dir: {state_dir}
outbox: {outbox}
devices:
  - name: press-1
    driver: modbus
    device_type: press
    connection: {{transport: tcp, host: 127.0.0.1, port: {press_port}}}
    unit_id: 3
    timeout: 2s
    poll_groups:
      - name: fast
        interval: {interval:g}s
        tags:
          - {{name: state, address: 0, type: uint16, enum: {{0: "off", 1: idle, 2: run, 3: fault}}}}
          - {{name: power, address: 2, type: float32, byte_order: BADC}}
          - {{name: strokes, address: 4, type: uint32, byte_order: DCBA}}
          - {{name: parts_good, address: 6, type: uint32, byte_order: CDAB}}
          - {{name: energy, address: 12, type: uint32, scale: 0.001}}
          - {{name: alarm_code, address: 14, type: uint16}}
  - name: compressor-1
    driver: modbus
    device_type: compressor
    connection: {{transport: tcp, host: 127.0.0.1, port: {compressor_port}}}
    unit_id: 1
    timeout: 2s
    poll_groups:
      - name: fast
        interval: {interval:g}s
        tags:
          - {{name: state, table: input, address: 0, type: uint16}}
          - {{name: power, table: input, address: 2, type: uint16, scale: 0.1}}
          - {{name: motor_speed, table: input, address: 3, type: uint16}}
          - {{name: energy, table: input, address: 6, type: uint32, scale: 0.001}}
sinks:
{sinks}
"""


def mqtt_sink(port: int) -> str:
    return f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {port}, keepalive: 5}}\n"


def influx_sink(url: str) -> str:
    return f"  - {{name: tsdb, type: influxdb, url: '{url}', org: plant, bucket: edge}}\n"


def fast_retries(agent: Agent) -> Agent:
    """Retry sinks (and reconnect to the broker) within 0.3 s instead of up to 15-30 s.

    The pacing of retries is not what these tests are about; waiting it out would
    only make them slow. Reaches into the runners and the MQTT sink on purpose.
    """
    for runner in agent.sinks:
        runner._backoff = Backoff(initial=0.05, cap=0.3, minimum=0.02)
        if hasattr(runner.sink, "_backoff"):
            runner.sink._backoff = Backoff(initial=0.05, cap=0.3, minimum=0.02)
    return agent


async def stop_serving(plant: Plant, interval: float) -> dict[str, int]:
    """Make both units refuse reads from now on (a refused read is not served) and
    wait for the read in flight to reach the agent; return the reads served."""
    for unit in DEVICES:
        plant.set_unit_fault(unit, UnitFault.DEVICE_BUSY)
    await asyncio.sleep(max(1.0, 3 * interval))
    return {unit: plant.reads_served(unit) for unit in DEVICES}


def stored_points(victoria: VictoriaMetrics) -> dict[str, list[int]]:
    """device -> millisecond timestamps of its ``energy`` field, as stored (duplicates
    kept, sorted)."""
    found: dict[str, list[int]] = {}
    for series in victoria.export('{__name__=~".+_energy"}'):
        found.setdefault(series["metric"]["device"], []).extend(series["timestamps"])
    return {device: sorted(stamps) for device, stamps in found.items()}


def duplicates(values: Iterable[Any]) -> int:
    return sum(count - 1 for count in Counter(values).values())


def message_keys(messages: list[Received]) -> list[tuple[str, int, bool]]:
    """(device, ts_ns, historical) of every data message with good values."""
    keys = []
    for message in messages:
        doc = json.loads(message.payload)
        if all(v["q"] == "good" for v in doc["values"].values()):
            keys.append((doc["device"], doc["ts_ns"], bool(doc.get("historical"))))
    return keys


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.05)

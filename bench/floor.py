"""``python -m bench.floor``: the protocol floor, a bare pymodbus client loop, no agent.

It issues exactly the reads of the agent's read plan (the harness writes them out
from :class:`~drivers.modbus.planner.AdaptivePlan`, the planner the agent itself
uses), on the same wall-clock-aligned ticks, over one connection per device with
one request outstanding per connection, as the agent's channel does. It decodes
nothing, stamps nothing, publishes nothing. What it costs per value is the least
any Python agent built on pymodbus can cost: the agent's CPU per value divided
by this one is the overhead of everything the agent adds (scheduling, decoding,
batches, the pipeline, the sinks).

Protocol with the harness: prints ``ready`` once every device is connected; on
SIGTERM it stops, closes its connections and writes one record per poll to
``--out`` as JSON: ``[start_ns, duration_ns, device, group, values, errors]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

Record = list[Any]


async def _read(
    client: AsyncModbusTcpClient, table: str, start: int, count: int, unit: int
) -> ModbusPDU:
    if table == "holding":
        return await client.read_holding_registers(start, count=count, device_id=unit)
    if table == "input":
        return await client.read_input_registers(start, count=count, device_id=unit)
    if table == "coil":
        return await client.read_coils(start, count=count, device_id=unit)
    return await client.read_discrete_inputs(start, count=count, device_id=unit)


async def _poll_group(
    client: AsyncModbusTcpClient,
    lock: asyncio.Lock,
    device: dict[str, Any],
    group: dict[str, Any],
    interval: float,
    records: list[Record],
) -> None:
    unit = int(device["unit"])
    requests = [(str(t), int(s), int(c)) for t, s, c in group["requests"]]
    tags = int(group["tags"])
    while True:
        tick = (math.floor(time.time() / interval) + 1) * interval
        await asyncio.sleep(tick - time.time())
        started = time.time_ns()
        errors = 0
        for table, start, count in requests:
            async with lock:  # one request outstanding per connection, as the agent's channel
                try:
                    response = await _read(client, table, start, count, unit)
                except ModbusException:
                    errors += 1
                    continue
            if response.isError():
                errors += 1
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Python 3.11's wait_for (inside pymodbus) can swallow a cancellation that
            # meets a response (gh-86296); stop anyway, as the agent's scheduler does.
            raise asyncio.CancelledError
        records.append(
            [
                started,
                time.time_ns() - started,
                device["name"],
                group["name"],
                0 if errors else tags,
                errors,
            ]
        )


async def run(plan: dict[str, Any]) -> list[Record]:
    """Poll until SIGTERM; returns one record per poll."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    interval = float(plan["interval"])
    records: list[Record] = []
    clients: list[AsyncModbusTcpClient] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        for device in plan["devices"]:
            client = AsyncModbusTcpClient(
                device["host"],
                port=int(device["port"]),
                timeout=float(device["timeout"]),
                retries=0,
                reconnect_delay=0,
            )
            clients.append(client)
            if not await client.connect():
                raise SystemExit(f"floor: cannot connect to {device['name']}")
        print("ready", flush=True)
        locks = [asyncio.Lock() for _ in clients]  # one per connection, shared by its groups
        async with asyncio.TaskGroup() as tasks:
            pollers = [
                tasks.create_task(_poll_group(client, lock, device, group, interval, records))
                for client, lock, device in zip(clients, locks, plan["devices"], strict=True)
                for group in device["groups"]
            ]
            await stop.wait()
            for task in pollers:
                task.cancel()
    finally:
        for client in clients:
            client.close()
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--plan", type=Path, required=True, help="read plan JSON from the harness")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text())
    records = asyncio.run(run(plan))
    args.out.write_text(json.dumps({"records": records}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

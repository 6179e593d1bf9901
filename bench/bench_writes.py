"""``python -m bench.bench_writes``: how long a write command takes, command to read-back.

The demo plant as it ships (its simulators and the agent as separate processes, a real
mosquitto), with the compressor's ``pressure_setpoint`` made writable often enough for a
benchmark (the demo's own limit is a few writes a minute). Commands alternate between two
setpoints, one at a time, each waiting for its result, started 20 a second (``--rate``):

* over MQTT: publish on ``edge/{plant}/compressor-1/cmd``, wait for ``.../cmd/result``;
* over the local socket of ``edge-agent write`` (one JSON line each way).

Reported per channel: the latency the sender sees (send to result) p50/p99/max, and from
the result document the agent's own split (received to written, written to confirmed by
read-back). The compressor's 1 s polls go on meanwhile: the jitter of their timestamps
(distance from the whole second) is reported for the write window and a quiet window
before it, so "polls keep their interval while writes run" is a figure, not a claim.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.procs import Child, machine_info, python
from tests.plant import CONFIG_FILE, DEMO_PORTS, PROFILE_FILE
from tests.servers import Mosquitto, free_port, wait_for_port

PLANT = "demo-plant"
DEVICE = "compressor-1"
TAG = "pressure_setpoint"
SETPOINTS = (6.5, 7.0)
#: The demo plant's write block for the setpoint ends so; the bench raises its limits
#: (the tag's default of 6 writes a minute and the device's 12), nothing else.
DEMO_WRITE_END = "read_back: {tolerance: 0.005}}}"
BENCH_WRITE_END = "read_back: {tolerance: 0.005}, max_per_minute: 600}}"
DEMO_DEVICE = "    device_type: compressor\n"
BENCH_DEVICE = "    device_type: compressor\n    writes: {max_per_minute: 6000}\n"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": float(len(values)),
        "p50": _percentile(values, 0.5),
        "p99": _percentile(values, 0.99),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


class Results:
    """The results and data messages the bench's MQTT client sees."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.results: dict[str, tuple[float, dict[str, Any]]] = {}
        #: Arrival of each compressor batch: (receive monotonic, batch timestamp in s).
        self.polls: list[tuple[float, float]] = []

    def on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        try:
            document = json.loads(message.payload)
        except ValueError:
            return
        if message.topic.endswith("/cmd/result"):
            with self.lock:
                self.results[str(document.get("id"))] = (now, document)
                self.lock.notify_all()
        elif message.topic == f"edge/{PLANT}/{DEVICE}/data" and document.get("group") == "fast":
            stamp = document.get("ts_ns")
            if isinstance(stamp, int):
                with self.lock:
                    self.polls.append((now, stamp / 1e9))

    def wait(self, command_id: str, timeout: float) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while command_id not in self.results:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no result for command {command_id} in {timeout} s")
                self.lock.wait(left)
            return self.results[command_id]


def _iso(ns: int) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9))
    return f"{whole}.{ns // 1_000_000 % 1000:03d}Z"


def _mqtt_command(value: float) -> tuple[str, bytes]:
    command_id = f"bench-{uuid.uuid4().hex[:12]}"
    now = time.time_ns()
    body = {"id": command_id, "tag": TAG, "value": value, "issued_at": _iso(now)}
    return command_id, json.dumps(body).encode()


def _socket_round_trip(path: Path, value: float) -> tuple[float, dict[str, Any]]:
    command_id = f"bench-{uuid.uuid4().hex[:12]}"
    request = {"id": command_id, "device": DEVICE, "tag": TAG, "value": value}
    started = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return time.monotonic() - started, json.loads(answer)


def _jitter_ms(polls: list[tuple[float, float]], since: float, until: float) -> dict[str, float]:
    """Distance of each poll's timestamp from its whole second, in ms."""
    offsets = [abs(stamp - round(stamp)) * 1000 for at, stamp in polls if since <= at < until]
    return _summary(offsets)


def _agent_split(document: dict[str, Any]) -> tuple[float, float]:
    timing = document.get("timing_ms") or {}
    return float(timing.get("to_write") or 0.0), float(timing.get("to_confirm") or 0.0)


def _measure(
    name: str, count: int, rate: float, send: Callable[[float], tuple[float, dict[str, Any]]]
) -> dict[str, Any]:
    """``count`` commands, one at a time, started ``rate`` a second (never two at once)."""
    started = time.monotonic()
    seen: list[float] = []
    to_write: list[float] = []
    to_confirm: list[float] = []
    outcomes: dict[str, int] = {}
    for i in range(count):
        wait = started + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        latency, document = send(SETPOINTS[i % 2])
        outcome = str(document.get("outcome"))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        seen.append(latency * 1000)
        write, confirm = _agent_split(document)
        to_write.append(write)
        to_confirm.append(confirm)
    return {
        "channel": name,
        "outcomes": outcomes,
        "sender_ms": _summary(seen),
        "agent_to_write_ms": _summary(to_write),
        "agent_to_confirm_ms": _summary(to_confirm),
    }


def run(
    count: int, quiet_s: float, work: Path, *, rate: float = 20.0, nagle: bool = False
) -> dict[str, Any]:
    # mosquitto leaves Nagle's algorithm on by default: its PUBACK and the PUBLISH after
    # it wait for the peer's delayed ACK (about 40 ms a hop). Off here, as a plant broker
    # for commands should be configured (docs/WRITES.md); --nagle measures the default.
    extra = "" if nagle else "set_tcp_nodelay true\n"
    broker = Mosquitto(port=free_port(), workdir=work / "mosquitto", extra_config=extra)
    broker.start()
    ports = {server: free_port() for server in DEMO_PORTS}
    profile = PROFILE_FILE.read_text()
    plant = CONFIG_FILE.read_text()
    for server, port in DEMO_PORTS.items():
        profile = profile.replace(f"port: {port}", f"port: {ports[server]}")
        plant = plant.replace(f"port: {port}}}", f"port: {ports[server]}}}")
    for old, new in ((DEMO_WRITE_END, BENCH_WRITE_END), (DEMO_DEVICE, BENCH_DEVICE)):
        if plant.count(old) != 1:
            raise SystemExit(f"configs/demo-plant.yaml changed ({old!r}): update the bench")
        plant = plant.replace(old, new)
    plant = plant.replace("${EDGE_AGENT_STATE:-./state}", str(work / "state"))
    plant += (
        "sinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {broker.port}, "
        "keepalive: 5, commands: true}\n"
    )
    (work / "profile.yaml").write_text(profile)
    (work / "plant.yaml").write_text(plant)
    simulate = python("-m", "simulators", "-c", str(work / "profile.yaml"))
    simulators = Child("simulators", simulate, work).start()
    agent: Child | None = None
    client_id = f"bench-writes-{uuid.uuid4().hex[:6]}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    results = Results()
    client.on_message = results.on_message
    try:
        for port in ports.values():
            wait_for_port(port, timeout=30)
        run = python("-m", "edge_agent", "run", "-c", str(work / "plant.yaml"))
        agent = Child("agent", run, work).start()
        client.connect("127.0.0.1", broker.port)
        sock = client.socket()
        if not nagle and isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(f"edge/{PLANT}/+/cmd/result", 1), (f"edge/{PLANT}/{DEVICE}/data", 1)])
        client.loop_start()

        def over_mqtt(value: float) -> tuple[float, dict[str, Any]]:
            command_id, payload = _mqtt_command(value)
            started = time.monotonic()
            client.publish(f"edge/{PLANT}/{DEVICE}/cmd", payload, qos=1)
            arrived, document = results.wait(command_id, 30)
            return arrived - started, document

        # Ready when a command is answered (the agent subscribed and the device is online).
        deadline = time.monotonic() + 60
        while True:
            try:
                _, first = over_mqtt(SETPOINTS[1])
            except TimeoutError:
                first = {}
            if first.get("outcome") == "applied":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the agent never applied a write: {first}")
            time.sleep(1)
        quiet_start = time.monotonic()
        time.sleep(quiet_s)
        writes_start = time.monotonic()
        mqtt_figures = _measure("mqtt", count, rate, over_mqtt)
        socket_path = work / "state" / "commands.sock"
        socket_figures = _measure(
            "socket", count, rate, lambda v: _socket_round_trip(socket_path, v)
        )
        writes_end = time.monotonic()
        return {
            "machine": machine_info(),
            "broker_nagle": nagle,
            "commands_per_channel": count,
            "commands_per_second": rate,
            "channels": [mqtt_figures, socket_figures],
            "poll_jitter_quiet_ms": _jitter_ms(results.polls, quiet_start, writes_start),
            "poll_jitter_writing_ms": _jitter_ms(results.polls, writes_start, writes_end),
        }
    finally:
        client.loop_stop()
        client.disconnect()
        if agent is not None:
            agent.stop()
        simulators.stop()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200, help="commands per channel")
    parser.add_argument("--quiet", type=float, default=20.0, help="seconds of polls before")
    parser.add_argument("--rate", type=float, default=20.0, help="commands started per second")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    parser.add_argument(
        "--nagle", action="store_true", help="leave Nagle on (mosquitto's and paho's default)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as work:
        figures = run(args.commands, args.quiet, Path(work), rate=args.rate, nagle=args.nagle)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

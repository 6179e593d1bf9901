"""The ``edge-agent`` command line as a plant engineer uses it: every call a real subprocess.

Each command runs as ``python -m edge_agent ...`` from the repository root, with a
timeout, and is always reaped (terminated, then killed) even when the test fails.
MQTT traffic is collected by a plain paho client that the test pumps while it waits
(no network thread). Everything listens on 127.0.0.1 only.

``edge-agent demo`` serves its simulators on the fixed ports 15020 and 15021: those
tests are skipped when the ports are taken. ``run`` is tested against ``edge-agent
simulate`` with a copy of the demo profile on free ports (port 0).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.servers import LOOPBACK, Mosquitto

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "edge_agent")
DEMO_CONFIG = ROOT / "configs" / "demo-plant.yaml"
DEMO_PROFILE = ROOT / "simulators" / "profiles" / "demo-plant.yaml"
DEMO_PORTS = (15020, 15021)
DEMO_DEVICES = {
    "line-meter",
    "cnc-1",
    "press-1",
    "compressor-1",
    "compressor-meter",
    "oven-1",
    "oven-meter",
    "dryer-gas",
}
TYPES = "bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string"

#: Bound on a short command (import, load, print) on a loaded 2-core CI machine.
QUICK_TIMEOUT = 60.0


# --------------------------------------------------------------------------- helpers


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["EDGE_AGENT_STATE"] = str(tmp_path / "state")  # never ./state in the checkout
    env["PYTHONUNBUFFERED"] = "1"  # partial output is in the files if a test fails
    for name in ("MQTT_HOST", "MQTT_USERNAME", "MQTT_PASSWORD"):
        env.pop(name, None)
    return env


def edge_agent(
    tmp_path: Path, *args: str, timeout: float = QUICK_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run one command to completion (``subprocess.run`` kills and reaps it on timeout)."""
    return subprocess.run(
        [*CLI, *args],
        cwd=ROOT,
        env=cli_env(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Background:
    """A command running in the background, its output going to files."""

    process: subprocess.Popen[bytes]
    stdout_file: Path
    stderr_file: Path

    @property
    def stdout(self) -> str:
        return self.stdout_file.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"


@contextlib.contextmanager
def background(tmp_path: Path, name: str, *args: str) -> Iterator[Background]:
    """Start ``edge-agent ARGS``; on the way out, terminate it (then kill it) and reap it."""
    out, err = tmp_path / f"{name}.stdout", tmp_path / f"{name}.stderr"
    # The child keeps its own copies of the file descriptors; ours are closed at once.
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [*CLI, *args],
            cwd=ROOT,
            env=cli_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        yield Background(process, out, err)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, idle: Any = None) -> None:
    """Wait for ``condition``, calling ``idle()`` (or sleeping briefly) in between."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        if idle is not None:
            idle()
        else:
            time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """A paho 2.x client without a network thread: the test pumps it while it waits."""

    def __init__(self, port: int, *topic_filters: str) -> None:
        self.port = port
        self.topic_filters = topic_filters
        self.messages: list[Message] = []
        self._suback = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-cli-{uuid.uuid4().hex[:10]}"
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append(Message(message.topic, bytes(message.payload), message.retain))

    def _on_subscribe(self, *args: Any) -> None:
        self._suback = True

    def __enter__(self) -> Subscriber:
        self._client.connect(LOOPBACK, self.port, keepalive=60)
        try:
            self._client.subscribe([(f, 1) for f in self.topic_filters])
            self.wait_until(lambda: self._suback, 10.0, "SUBACK")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pump(self, seconds: float = 0.05) -> None:
        self._client.loop(seconds)

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        wait_until(condition, timeout, what, idle=self.pump)

    def close(self) -> None:
        self._client.disconnect()
        for _ in range(20):  # written at once: no thread, nothing else queued
            if self._client.socket() is None:
                break
            self._client.loop(0.01)

    # -- what arrived

    def data(self) -> list[tuple[str, dict[str, Any]]]:
        """Every data message as (device from the topic, decoded payload)."""
        found = []
        for m in self.messages:
            parts = m.topic.split("/")
            if len(parts) == 4 and parts[3] == "data":
                found.append((parts[2], json.loads(m.payload)))
        return found

    def devices(self) -> set[str]:
        return {m.topic.split("/")[2] for m in self.messages if m.topic.endswith("/data")}

    def statuses(self) -> list[bytes]:
        return [m.payload for m in self.messages if m.topic.endswith("/status")]


def retained_status(port: int, plant: str = "demo-plant") -> Message:
    """What a client that subscribes now gets on the status topic (the retained message)."""
    with Subscriber(port, f"edge/{plant}/status") as sub:
        sub.wait_until(lambda: bool(sub.messages), 10.0, "the retained status")
        return sub.messages[0]


def port_busy(port: int) -> bool:
    """True if something listens on 127.0.0.1:``port`` (bound the way asyncio binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def skip_if_demo_ports_busy() -> None:
    busy = [p for p in DEMO_PORTS if port_busy(p)]
    if busy:
        pytest.skip(
            f"edge-agent demo serves its simulators on the fixed ports 15020 and 15021, "
            f"and 127.0.0.1:{busy[0]} is in use (another demo or simulator running?)"
        )


def line_of(text: str, needle: str) -> int:
    """1-based number of the only line of ``text`` that contains ``needle``."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def check_payload(device: str, payload: dict[str, Any]) -> None:
    """The envelope of docs/MQTT.md: fields, types, and ts agreeing with ts_ns."""
    assert {"schema", "plant", "device", "group", "ts", "ts_ns", "values"} <= payload.keys()
    assert payload["schema"] == 1
    assert payload["plant"] == "demo-plant"
    assert payload["device"] == device
    assert isinstance(payload["group"], str)
    assert payload["group"]
    assert isinstance(payload["ts_ns"], int)
    ts = datetime.strptime(payload["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(ts.timestamp() - payload["ts_ns"] / 1e9) < 0.002, payload["ts"]
    assert abs(time.time() - payload["ts_ns"] / 1e9) < 120, "ts is not the time of the read"
    assert payload["values"], payload
    for name, sample in payload["values"].items():
        assert sample["q"] in {"good", "uncertain", "bad"}, (device, name, sample)
        if sample["q"] == "good":
            assert sample["v"] is not None, (device, name, sample)
        else:
            assert sample.get("r"), f"{device}.{name} is {sample['q']} without a reason"
        if sample["q"] == "bad":
            assert sample["v"] is None, (device, name, sample)


def good(payload: dict[str, Any], name: str) -> Any:
    sample = payload["values"][name]
    assert sample["q"] == "good", (payload["device"], name, sample)
    return sample["v"]


def check_demo_values(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Decoded values that make sense for the demo equipment (independent of the codec)."""
    for device, payload in messages:
        values = payload["values"]
        if device in {"line-meter", "compressor-meter"}:
            if values["voltage_l1"]["q"] == "good":
                assert 200 <= good(payload, "voltage_l1") <= 260, payload
            if values["frequency"]["q"] == "good":
                assert 49 <= good(payload, "frequency") <= 51, payload
        state = values.get("state", {})
        if device in {"cnc-1", "press-1", "compressor-1"} and state.get("q") == "good":
            assert good(payload, "state") in {"off", "idle", "run", "fault"}, payload
        if device == "cnc-1" and payload["group"] == "fast":
            counters = ("parts_total", "parts_good", "parts_scrap")
            if all(values[n]["q"] == "good" for n in counters):
                total, ok, scrap = (good(payload, n) for n in counters)
                assert all(isinstance(v, int) for v in (total, ok, scrap)), payload
                assert total == ok + scrap, payload  # read in one request: consistent
        if device == "cnc-1" and payload["group"] == "slow":
            program = good(payload, "program")
            assert isinstance(program, str), payload
            assert program.strip(), payload
            assert program.isprintable(), payload
        if device == "press-1" and payload["group"] == "fast":
            counters = ("strokes", "parts_good", "parts_scrap")
            if all(values[n]["q"] == "good" for n in counters):
                strokes, ok, scrap = (good(payload, n) for n in counters)
                assert strokes == ok + scrap, payload  # DCBA vs CDAB words agree


def wait_for_the_middle_of_a_10s_window() -> None:
    """Start a short demo so that a 10 s boundary (the slow groups' tick) falls inside it.

    Ticks are aligned to the wall clock, so an 8 s run sees a 10 s poll group only if
    it spans a multiple of 10 s. At most a few seconds of waiting.
    """
    while not 2.0 <= time.time() % 10 <= 6.5:
        time.sleep(0.1)


# --------------------------------------------------------------------------- check


def test_check_demo_plant_prints_the_summary(tmp_path: Path) -> None:
    result = edge_agent(tmp_path, "check", "-c", "configs/demo-plant.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    lines = out.splitlines()
    assert lines[0] == "configs/demo-plant.yaml: valid"
    assert "plant demo-plant (Suzhou line 1), Asia/Shanghai" in lines

    # Devices and tags as written in the file, counted independently of the agent.
    doc = yaml.safe_load(DEMO_CONFIG.read_text())
    n_tags = 0
    for device in doc["devices"]:
        tags = sum(len(g["tags"]) for g in device["poll_groups"])
        n_tags += tags
        conn = device["connection"]
        header = (
            f"device {device['name']}: modbus tcp {conn['host']}:{conn['port']} "
            f"unit {device['unit_id']}, {tags} tags"
        )
        assert any(line.startswith(header) for line in lines), (header, out)
        for group in device["poll_groups"]:
            pattern = (
                rf"^  group {re.escape(group['name'])}: every \S+, {len(group['tags'])} tags? "
                r"in \d+ reads? per poll$"
            )
            assert any(re.match(pattern, line) for line in lines), (pattern, out)

    # The read plan: one line per coalesced request, with its range and its tags.
    plan = [
        re.match(
            r"^    (holding|input|coil|discrete_input) (\d+)-(\d+) \((\d+) (registers|bits)", x
        )
        for x in lines
    ]
    plan = [m for m in plan if m]
    assert len(plan) >= len(doc["devices"]), out
    for m in plan:
        first, last, count = int(m[2]), int(m[3]), int(m[4])
        assert last - first + 1 == count, m[0]
    # The meter's hole at 12-15 is small enough to be spanned: one read for 12 tags.
    assert "    input 0-33 (34 registers, 12 tags)" in lines

    assert "no sinks: values are collected but published nowhere" in lines
    total = re.search(r"^total: (\d+) devices, (\d+) tags, ([\d.]+) reads/s", out, re.M)
    assert total, out
    assert (int(total[1]), int(total[2])) == (len(doc["devices"]), n_tags) == (8, 62)
    assert float(total[3]) > 0


# --------------------------------------------------------------------------- broken files

TYPO_PLANT = """\
plant:
  name: line-1
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: PORT}
    unit_id: 1
    timout: 1s
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: voltage, table: input, address: 0, type: float32}
          - {name: current, table: input, address: 2, type: flaot32}
sinks:
  - name: broker
    type: mqtt
    host: 127.0.0.1
    port: PORT
"""


@pytest.mark.parametrize("command", ["check", "run"])
def test_typo_in_the_file_is_reported_with_file_line_and_field(
    tmp_path: Path, command: str
) -> None:
    # Device and sink point at a socket of the test: nothing may connect to it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(8)
        listener.setblocking(False)
        text = TYPO_PLANT.replace("PORT", str(listener.getsockname()[1]))
        path = tmp_path / "plant.yaml"
        path.write_text(text)

        result = edge_agent(tmp_path, command, "-c", str(path))

        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing started: no connection to the device or broker

    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    # Every problem at once, in the order of the file, then the count.
    assert result.stderr.splitlines() == [
        f"{path}:{line_of(text, 'timout')}: devices[0].timout: "
        "unknown key 'timout' (did you mean 'timeout'?)",
        f"{path}:{line_of(text, 'flaot32')}: devices[0].poll_groups[0].tags[1].type: "
        f"'flaot32' is not one of {TYPES}; did you mean float32?",
        f"{path}: 2 problems; nothing started",
    ]
    assert not (tmp_path / "state").exists()


def test_misspelt_key_that_is_also_required_is_reported_both_ways(tmp_path: Path) -> None:
    text = TYPO_PLANT.replace("flaot32", "float32").replace("timout", "timeout")
    text = text.replace("address: 2,", "adress: 2,").replace("PORT", "1502")
    path = tmp_path / "plant.yaml"
    path.write_text(text)
    result = edge_agent(tmp_path, "check", "-c", str(path))
    assert result.returncode == 2, result
    line = line_of(text, "adress")
    assert result.stderr.splitlines() == [
        f"{path}:{line}: devices[0].poll_groups[0].tags[1].address: required field is missing",
        f"{path}:{line}: devices[0].poll_groups[0].tags[1].adress: "
        "unknown key 'adress' (did you mean 'address'?)",
        f"{path}: 2 problems; nothing started",
    ]


@pytest.mark.parametrize("command", ["check", "run"])
def test_missing_file_is_one_clear_error(tmp_path: Path, command: str) -> None:
    path = tmp_path / "no-such-plant.yaml"
    result = edge_agent(tmp_path, command, "-c", str(path))
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"{path}: cannot read the file"), lines[0]
    assert "No such file" in lines[0]
    assert lines[1] == f"{path}: 1 problem; nothing started"


@pytest.mark.parametrize("command", ["check", "run"])
def test_yaml_syntax_error_is_one_clear_error(tmp_path: Path, command: str) -> None:
    text = (
        "plant:\n"
        "  name: line-1\n"
        "devices:\n"
        "  - name: meter\n"
        "    driver: modbus\n"
        "   connection: {transport: tcp, host: 127.0.0.1}\n"  # one space short
    )
    path = tmp_path / "plant.yaml"
    path.write_text(text)
    result = edge_agent(tmp_path, command, "-c", str(path))
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert re.match(rf"^{re.escape(str(path))}:6: YAML syntax: \S", lines[0]), lines[0]
    assert lines[1] == (
        f"{path}: 1 problem; nothing started; "
        "fix the YAML syntax first, the rest is checked after it"
    )


# --------------------------------------------------------------------------- schema


def test_schema_prints_the_committed_schema(tmp_path: Path) -> None:
    result = edge_agent(tmp_path, "schema")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = json.loads(result.stdout)
    assert printed == json.loads((ROOT / "configs" / "schema.json").read_text())
    assert printed["$schema"].startswith("https://json-schema.org/")


# --------------------------------------------------------------------------- demo


def test_demo_publishes_the_plant_to_mqtt(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The issue's acceptance check: ``edge-agent demo --mqtt HOST:PORT --duration 8``."""
    skip_if_demo_ports_busy()
    wait_for_the_middle_of_a_10s_window()
    with Subscriber(mosquitto.port, "edge/demo-plant/+/data", "edge/demo-plant/status") as sub:
        started = time.monotonic()
        with background(
            tmp_path, "demo", "demo", "--mqtt", f"127.0.0.1:{mosquitto.port}", "--duration", "8"
        ) as demo:
            sub.wait_until(lambda: not demo.running(), 40.0, "the demo to end by itself")
            elapsed = time.monotonic() - started
        sub.pump(0.2)  # anything still in flight
    assert demo.process.returncode == 0, demo.output()
    assert 8 <= elapsed < 30, elapsed
    assert "Traceback" not in demo.stderr, demo.output()

    out = demo.stdout
    assert (
        f"publishing to MQTT broker 127.0.0.1:{mosquitto.port} "
        "on edge/demo-plant/<device>/data" in out.splitlines()
    ), out
    final = out.split("final values:\n", 1)
    assert len(final) == 2, out
    for device in DEMO_DEVICES:
        assert re.search(rf"^  {re.escape(device)} +online +\S+=", final[1], re.M), out
    assert re.search(r"^  sink demo-mqtt: .*, [1-9]\d* batches sent, 0 buffered$", final[1], re.M)

    data = sub.data()
    assert sub.devices() == DEMO_DEVICES, sorted(sub.devices())
    assert len(data) >= 3 * len(DEMO_DEVICES), len(data)
    for device, payload in data:
        check_payload(device, payload)
    check_demo_values(data)
    per_device = {d: [p for dev, p in data if dev == d] for d in DEMO_DEVICES}
    assert all(len(msgs) >= 2 for msgs in per_device.values()), {
        d: len(m) for d, m in per_device.items()
    }
    # A value of the 10 s group: read at least once if the run spanned its tick.
    ticks = {math.floor(p["ts_ns"] / 1e9) for p in per_device["cnc-1"] if p["group"] == "fast"}
    if any(t % 10 == 0 for t in ticks):
        assert any(p["group"] == "slow" for p in per_device["cnc-1"]), sorted(ticks)

    # After the first second, the healthy demo plant gives nothing but good values.
    first = min(p["ts_ns"] for _, p in data)
    for device, payload in data:
        if payload["ts_ns"] >= first + 1_000_000_000:
            bad = {n: s for n, s in payload["values"].items() if s["q"] != "good"}
            assert not bad, (device, payload["ts"], bad)

    # Status: online while it ran, offline once it stopped, and offline stays retained.
    statuses = sub.statuses()
    assert statuses[0] == b"online", statuses
    assert statuses[-1] == b"offline", statuses
    status = retained_status(mosquitto.port)
    assert (status.payload, status.retain) == (b"offline", True)


def test_demo_without_broker_says_publishing_is_off(tmp_path: Path) -> None:
    skip_if_demo_ports_busy()
    result = edge_agent(tmp_path, "demo", "--duration", "3")
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    mqtt_lines = [line for line in lines if "MQTT" in line]
    assert len(mqtt_lines) == 1, lines
    assert "publishing is off" in mqtt_lines[0]
    assert "--mqtt HOST:PORT" in mqtt_lines[0]
    assert "final values:" in lines
    final = result.stdout.split("final values:\n", 1)[1]
    for device in DEMO_DEVICES:
        assert re.search(rf"^  {re.escape(device)} +online ", final, re.M), result.stdout
    assert "sink " not in final


def test_demo_stops_cleanly_on_ctrl_c(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """No --duration: the way a new user stops the demo is Ctrl-C (SIGINT)."""
    skip_if_demo_ports_busy()
    with Subscriber(mosquitto.port, "edge/demo-plant/+/data", "edge/demo-plant/status") as sub:
        with background(tmp_path, "demo", "demo", "--mqtt", f"127.0.0.1:{mosquitto.port}") as demo:
            sub.wait_until(lambda: sub.devices() == DEMO_DEVICES, 30.0, "every device's values")
            assert demo.running(), demo.output()
            demo.process.send_signal(signal.SIGINT)
            sub.wait_until(lambda: not demo.running(), 15.0, "the demo to stop on Ctrl-C")
        sub.pump(0.2)
    assert demo.process.returncode == 0, demo.output()
    assert "Traceback" not in demo.stderr, demo.output()
    final = demo.stdout.split("final values:\n", 1)
    assert len(final) == 2, demo.output()
    for device in DEMO_DEVICES:
        assert re.search(rf"^  {re.escape(device)} +online ", final[1], re.M), demo.output()
    assert sub.statuses()[-1] == b"offline"
    status = retained_status(mosquitto.port)
    assert (status.payload, status.retain) == (b"offline", True)


def test_demo_with_its_ports_taken_says_so_in_one_line(tmp_path: Path) -> None:
    skip_if_demo_ports_busy()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((LOOPBACK, DEMO_PORTS[1]))
        squatter.listen(1)
        result = edge_agent(tmp_path, "demo", "--duration", "3")
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "127.0.0.1:15021" in errors[0]
    assert "final values:" not in result.stdout


def test_demo_with_a_malformed_mqtt_address_is_a_usage_error(tmp_path: Path) -> None:
    result = edge_agent(tmp_path, "demo", "--mqtt", "localhost", "--duration", "3")
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "--mqtt 'localhost': expected HOST:PORT, e.g. 127.0.0.1:1883"
    ]


# --------------------------------------------------------------------------- run


def test_simulate_with_a_template_name_suggests_template_prefix(tmp_path: Path) -> None:
    result = edge_agent(tmp_path, "simulate", "-c", "eastron-sdm630", "--duration", "1")
    assert result.returncode == 2, result
    assert "did you mean -c template:eastron-sdm630?" in result.stderr, result.stderr
    assert "No such file" not in result.stderr

    usage = edge_agent(tmp_path, "simulate", "--help")
    assert "template:NAME[:PORT]" in " ".join(usage.stdout.split()), usage.stdout
    assert "template:NAME[:PORT]" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    ("profile", "where"),
    [
        ("template:eastron-sdm630:{port}", "127.0.0.1:{port}"),
        ("opcua", "opc.tcp://127.0.0.1:{port}"),
    ],
)
def test_simulate_on_a_taken_port_says_the_port_is_in_use(
    tmp_path: Path, profile: str, where: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((LOOPBACK, 0))
        squatter.listen(1)
        port = int(squatter.getsockname()[1])
        if profile == "opcua":
            text = (ROOT / "simulators" / "profiles" / "opcua-cell.yaml").read_text()
            assert "port: 4841\n" in text
            path = tmp_path / "cell.yaml"
            path.write_text(text.replace("port: 4841\n", f"port: {port}\n"))
            profile = str(path)
        result = edge_agent(
            tmp_path, "simulate", "-c", profile.format(port=port), "--duration", "3"
        )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    (error,) = result.stderr.splitlines()
    assert error.startswith("error: "), error
    assert where.format(port=port) in error
    assert f"port {port} is already in use" in error
    assert "check address" not in error


@contextlib.contextmanager
def simulated_plant(tmp_path: Path) -> Iterator[dict[str, int]]:
    """``edge-agent simulate`` with the demo profile on free ports: server name -> port."""
    profile = tmp_path / "demo-profile.yaml"
    text = DEMO_PROFILE.read_text()
    for port in DEMO_PORTS:
        text = re.sub(rf"^(\s+port:) {port}$", r"\1 0", text, flags=re.M)
    profile.write_text(text)
    with background(
        tmp_path, "simulate", "simulate", "-c", str(profile), "--duration", "60"
    ) as sim:
        ports: dict[str, int] = {}

        def listening() -> bool:
            assert sim.running(), sim.output()
            found = re.findall(r"^  (\S+): modbus-tcp 127\.0\.0\.1:(\d+) ", sim.stdout, re.M)
            ports.update((name, int(port)) for name, port in found)
            return len(ports) == 2

        wait_until(listening, 30.0, "the simulators to listen")
        yield ports
        sim.process.send_signal(signal.SIGTERM)
        sim.process.wait(10)
        assert sim.process.returncode == 0, sim.output()


def plant_file(tmp_path: Path, ports: dict[str, int], broker: Mosquitto) -> Path:
    text = DEMO_CONFIG.read_text()
    text = text.replace("port: 15020}", f"port: {ports['line-gateway']}}}")
    text = text.replace("port: 15021}", f"port: {ports['utility']}}}")
    text += (
        f"\nsinks:\n  - {{name: plant-broker, type: mqtt, host: 127.0.0.1, port: {broker.port}}}\n"
    )
    path = tmp_path / "plant.yaml"
    path.write_text(text)
    return path


def log_events(stderr: str) -> list[str]:
    """The ``event`` of every JSON log line (logs are JSON lines off a terminal)."""
    events = []
    for line in stderr.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and "event" in record:
                events.append(record["event"])
    return events


def test_run_collects_from_simulators_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with simulated_plant(tmp_path) as ports:
        config = plant_file(tmp_path, ports, mosquitto)
        checked = edge_agent(tmp_path, "check", "-c", str(config))
        assert checked.returncode == 0, checked.stderr
        assert re.search(rf"plant-broker.*127\.0\.0\.1:{mosquitto.port}", checked.stdout), (
            checked.stdout
        )

        # 1. --duration: stops by itself, having published every device.
        with Subscriber(mosquitto.port, "edge/demo-plant/+/data", "edge/demo-plant/status") as sub:
            with background(tmp_path, "run", "run", "-c", str(config), "--duration", "4") as run:
                sub.wait_until(lambda: not run.running(), 30.0, "run --duration 4 to end")
            sub.pump(0.2)
        assert run.process.returncode == 0, run.output()
        assert sub.devices() == DEMO_DEVICES, run.output()
        for device, payload in sub.data():
            check_payload(device, payload)
        check_demo_values(sub.data())
        assert sub.statuses()[-1] == b"offline"
        assert "agent stopped" in log_events(run.stdout), run.output()

        # 2. SIGTERM long before the duration ends: a graceful stop within seconds.
        with Subscriber(mosquitto.port, "edge/demo-plant/+/data", "edge/demo-plant/status") as sub:
            with background(tmp_path, "run2", "run", "-c", str(config), "--duration", "60") as run:
                sub.wait_until(
                    lambda: sub.devices() == DEMO_DEVICES and b"online" in sub.statuses(),
                    30.0,
                    "values from every device",
                )
                assert run.running(), run.output()
                run.process.send_signal(signal.SIGTERM)
                stopped_at = time.monotonic()
                sub.wait_until(lambda: not run.running(), 15.0, "run to stop after SIGTERM")
                took = time.monotonic() - stopped_at
            sub.pump(0.2)
        assert run.process.returncode == 0, run.output()
        assert took < 8.0, took  # drain (nothing buffered) and the offline status
        for device, payload in sub.data():
            check_payload(device, payload)
        check_demo_values(sub.data())
        events = log_events(run.stdout)
        assert "agent stopping: polling stops, sinks drain" in events, run.output()
        assert events[-1] == "agent stopped", run.output()
        assert "Traceback" not in run.stderr, run.output()
        status = retained_status(mosquitto.port)
        assert (status.payload, status.retain) == (b"offline", True)

"""``edge-agent run`` as systemd runs it: a real process, signals, a notify socket, secrets.

One life of the service: it starts with a broker that refuses it and a device that
is not there, takes a valid config by SIGHUP, refuses an invalid one and keeps
running, and stops on SIGTERM with undeliverable data within the unit's
TimeoutStopSec, exit status 0, the undelivered batches kept in the outbox for the
next start. Meanwhile every byte it writes is checked for the secrets it was given
(environment and plant file: MQTT passwords, the InfluxDB token).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from edge_agent.outbox.status import read_status
from tests.servers import Mosquitto, free_port
from tests.service_support import NotifyListener

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "edge-agent.service"

ENV_SECRET = "env-Secret-9921"
FILE_SECRET = "literal-Secret-4417"
RELOADED_SECRET = "second-Secret-5530"
NUMERIC_SECRET = "55501234"
INFLUX_SECRET = "influx-Token-7781=="
SECRETS = (ENV_SECRET, FILE_SECRET, RELOADED_SECRET, NUMERIC_SECRET, INFLUX_SECRET)


def _plant(
    device_port: int,
    broker_port: int,
    *,
    interval: str = "1s",
    backup_password: str = FILE_SECRET,
    broken: bool = False,
) -> str:
    password = NUMERIC_SECRET if broken else "${MQTT_PASSWORD}"
    typo = "    keepalivee: 5\n" if broken else ""
    return f"""\
plant: {{name: line-7}}
state_dir: ${{EDGE_AGENT_STATE}}
devices:
  - name: meter
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1, port: {device_port}}}
    timeout: 0.2s
    poll_groups: [{{name: fast, interval: {interval}, tags: [{{name: v, address: 0}}]}}]
sinks:
  - name: broker
    type: mqtt
    host: 127.0.0.1
    port: {broker_port}
    username: agent
    password: {password}
{typo}  - {{name: backup, type: mqtt, host: 127.0.0.1, port: {device_port}, username: agent,
      password: "{backup_password}"}}
  - {{name: tsdb, type: influxdb, url: "http://127.0.0.1:{device_port}", org: line-7,
      bucket: edge, token: "${{INFLUX_TOKEN}}", quality: field}}
logging: {{level: debug, format: json}}
service:
  drain_timeout: 1s
  status_interval: 1s
  health: {{port: 0}}
"""


def _events(stderr: str) -> list[dict[str, Any]]:
    events = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "event" in record:
            events.append(record)
    return events


def _timeout_stop_sec() -> float:
    match = re.search(r"^TimeoutStopSec=(\d+)s$", UNIT.read_text(), re.M)
    assert match, "TimeoutStopSec=Ns in the unit"
    return float(match[1])


@contextmanager
def _agent(tmp_path: Path, config: Path, notify: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ)
    env.update(
        MQTT_PASSWORD=ENV_SECRET,
        INFLUX_TOKEN=INFLUX_SECRET,
        EDGE_AGENT_STATE=str(tmp_path / "state"),
        NOTIFY_SOCKET=str(notify),
        PYTHONUNBUFFERED="1",
    )
    env.pop("WATCHDOG_USEC", None)
    with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(config)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_reload_by_sighup_stop_by_sigterm_and_no_secret_in_any_output(tmp_path: Path) -> None:
    # A broker that refuses everyone: the agent logs its refusals (with the user name).
    broker = Mosquitto(free_port(), tmp_path / "mosquitto", extra_config="allow_anonymous false\n")
    broker.start()
    listener = NotifyListener(tmp_path / "notify.sock")
    nobody = free_port()  # neither the device nor the backup broker is there
    config = tmp_path / "plant.yaml"
    config.write_text(_plant(nobody, broker.port))
    stderr = tmp_path / "out"  # the agent logs on stdout
    try:
        with _agent(tmp_path, config, listener.path) as process:

            def wait(condition: Callable[[list[dict[str, Any]]], bool], what: str) -> None:
                deadline = time.monotonic() + 30
                while not condition(_events(stderr.read_text())):
                    assert process.poll() is None, stderr.read_text()[-3000:]
                    assert time.monotonic() < deadline, f"{what}:\n{stderr.read_text()[-3000:]}"
                    time.sleep(0.05)

            def has(event: str, **fields: object) -> Callable[[list[dict[str, Any]]], bool]:
                return lambda events: any(
                    e["event"] == event and all(e.get(k) == v for k, v in fields.items())
                    for e in events
                )

            wait(
                has("sink delivery failing; batches stay buffered and are retried", sink="broker"),
                "a failing sink",
            )
            wait(has("device offline", device="meter"), "the device offline")
            assert listener.seen("READY")

            # SIGHUP with a valid change: the device and the backup sink restart.
            config.write_text(
                _plant(nobody, broker.port, interval="2s", backup_password=RELOADED_SECRET)
            )
            process.send_signal(signal.SIGHUP)
            wait(has("config reloaded"), "the reload")
            reloaded = next(
                e for e in _events(stderr.read_text()) if e["event"] == "config reloaded"
            )
            assert reloaded["devices_changed"] == ["meter"]
            assert reloaded["sinks_changed"] == ["backup"]
            assert "sinks_removed" not in reloaded

            # SIGHUP with an invalid file: refused, with file:line, and it keeps running.
            broken = _plant(nobody, broker.port, broken=True)
            config.write_text(broken)
            lines = broken.splitlines()
            password_line = lines.index(f"    password: {NUMERIC_SECRET}") + 1
            typo_line = lines.index("    keepalivee: 5") + 1
            process.send_signal(signal.SIGHUP)
            refusal = (
                "config reload refused: the file is invalid; the previous config keeps running"
            )
            wait(has(refusal), "the refusal")
            refused = next(e for e in _events(stderr.read_text()) if e["event"] == refusal)
            text = "\n".join(refused["problems"])
            assert (
                f"{config}:{password_line}: sinks[0].password: read as a number where text is "
                "expected: write it in quotes" in text
            ), text
            assert f"{config}:{typo_line}: sinks[0].keepalivee: unknown key 'keepalivee'" in text, (
                text
            )
            time.sleep(0.5)
            assert process.poll() is None

            # systemctl reload, twice: RELOADING=1 then READY=1 each time.
            listener.drain()
            kinds = [next(iter(m)) for m in listener.messages if "RELOADING" in m or "READY" in m]
            assert kinds == ["READY", "RELOADING", "READY", "RELOADING", "READY"], kinds
            assert "last reload refused (2 problems)" in listener.messages[-1]["STATUS"]

            # SIGTERM while nothing can be delivered: exit 0 well within TimeoutStopSec.
            process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            process.wait(_timeout_stop_sec())
            took = time.monotonic() - stopped_at
        assert process.returncode == 0, stderr.read_text()[-3000:]
        assert took < _timeout_stop_sec()
        events = _events(stderr.read_text())
        names = [e["event"] for e in events]
        assert names[-1] == "agent stopped"
        undelivered = [e for e in events if e["event"].startswith("sink did not drain")]
        assert {e["sink"] for e in undelivered} == {"broker", "backup", "tsdb"}
        assert all(e["buffered"] > 0 for e in undelivered)
        assert listener.seen("STOPPING")
        # Nothing of it is lost: the outbox file holds each sink's backlog for the next start.
        status = read_status(tmp_path / "state" / "outbox.sqlite3")
        assert {s.sink: s.rows for s in status.sinks} == {
            e["sink"]: e["buffered"] for e in undelivered
        }
    finally:
        broker.stop()
        listener.close()

    output = (tmp_path / "out").read_bytes() + (tmp_path / "err").read_bytes()
    assert b"agent" in output  # the user name is not a secret, and it was logged
    for secret in SECRETS:
        assert secret.encode() not in output, f"{secret} leaked into the output"

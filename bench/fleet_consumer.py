"""``python -m bench.fleet_consumer``: the platform's side of a fleet run, in its own process.

One MQTT client on one node of the cluster, as a platform's ingest service is: QoS 1,
a persistent session (clean session false, a fixed client id), so that the broker keeps
its subscription and its unacknowledged messages across a reconnect; it subscribes to the
fleet's whole topic tree and records, per data message, the arrival time, the batch
timestamp, the agent (the ``{plant}`` of the topic), device, group, values, good values and
size (payload + topic bytes). The status, meta and metrics messages are counted apart
with their sizes and retain flags: docs/FLEET.md prices them from these counts.

It only parses and records; bench/fleet_accounting.py does the judging after the run.
Each message is parsed fully (``json.loads``), as bench/subscriber.py does and for the
same reason: a count taken from the real document cannot be fooled by an odd payload.

Protocol with the harness: ``ready`` once subscribed, ``first AGENT`` at an agent's first
data message; on SIGTERM it disconnects and writes its records as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

#: Topic layout the fleet's agents publish with (bench/fleet.py writes these templates).
ROOT = "fleet"
DATA_TOPIC = ROOT + "/{plant}/{device}/{group}"
STATUS_TOPIC = ROOT + "/{plant}/status"
META_TOPIC = ROOT + "/{plant}/{device}/meta"
METRICS_TOPIC = ROOT + "/{plant}/{device}/metrics"


class FleetRecorder:
    def __init__(self) -> None:
        #: [arrival_ns, ts_ns, agent, device, group, values, good, size]
        self.records: list[list[Any]] = []
        self.malformed = 0
        self.agents: set[str] = set()
        #: kind (status, meta, metrics, other) -> [messages, bytes, retained messages]
        self.other: dict[str, list[int]] = {}
        self.connects = 0
        self.bad_reasons: Counter[str] = Counter()

    def on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        arrival = time.time_ns()
        parts = message.topic.split("/")
        size = len(message.payload) + len(message.topic.encode())
        kind = _kind(parts)
        if kind != "data":
            entry = self.other.setdefault(kind, [0, 0, 0])
            entry[0] += 1
            entry[1] += size
            entry[2] += int(message.retain)
            return
        try:
            doc = json.loads(message.payload)
            values = doc["values"]
            good = sum(1 for v in values.values() if v["q"] == "good")
            record = [arrival, int(doc["ts_ns"]), parts[1], doc["device"], doc["group"]]
            record += [len(values), good, size]
        except (ValueError, KeyError, TypeError, AttributeError):
            self.malformed += 1
            return
        self.records.append(record)
        if good != len(values):
            self.bad_reasons.update(v.get("r", "") for v in values.values() if v["q"] != "good")
        if parts[1] not in self.agents:
            self.agents.add(parts[1])
            print(f"first {parts[1]}", flush=True)


def _kind(parts: list[str]) -> str:
    if len(parts) == 3 and parts[2] == "status":
        return "status"
    if len(parts) == 4 and parts[3] in ("meta", "metrics"):
        return parts[3]
    return "data" if len(parts) == 4 else "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_consumer", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", default="fleet-consumer")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    recorder = FleetRecorder()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, clean_session=False)
    client.on_message = recorder.on_message

    def on_connect(c: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            print(f"connect refused: {reason}", file=sys.stderr, flush=True)
            c.disconnect()
            return
        recorder.connects += 1
        c.subscribe(f"{ROOT}/#", qos=1)

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            print(f"subscribe refused: {reasons}", file=sys.stderr, flush=True)
            client.disconnect()
            return
        print("ready", flush=True)

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        client.disconnect()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_forever(retry_first_connection=True)
    args.out.write_text(
        json.dumps(
            {
                "records": recorder.records,
                "malformed": recorder.malformed,
                "other": recorder.other,
                "connects": recorder.connects,
                "bad_reasons": dict(recorder.bad_reasons),
            },
            separators=(",", ":"),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

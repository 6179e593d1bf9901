"""``python -m bench.subscriber``: the far end of the pipeline, in its own process.

Subscribes (QoS 1) to the agent's data topics on the benchmark broker and records,
per message (= one batch of one poll group), the arrival time, the batch timestamp,
the device, the group, the number of values and how many of them are good. The
harness turns these records into delivered values, poll jitter, end-to-end latency
and losses; the subscriber itself only parses and counts, so it stays cheap.

Protocol with the harness: prints ``ready`` once subscribed and ``first DEVICE``
when a device's first batch arrives; on SIGTERM it disconnects and writes the
records as JSON to ``--out``, then exits 0.

With ``--sparkplug-group-tags`` the agent publishes as a Sparkplug B edge node instead:
each DDATA (one batch) is decoded with the generated protobuf module, its aliases named
from the device's last DBIRTH, and its poll group told from its first tag's position
(bench/plant.py names tags ``tNNNNN`` and cuts groups every ``group_tags`` positions).
A metric is good when it has a value and no Quality property other than 192; a DDATA
is historical when its metrics are flagged ``is_historical``.

Each message is fully parsed (``json.loads``) rather than pattern-matched: a count
taken from the real document cannot be fooled by an odd payload, and at the
benchmark's sizes it costs a few per cent of one core. Metric batches (issue 4:
``attributes.kind == "metrics"``) are counted apart, so they never pass for raw values.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Recorder:
    """Collects one compact record per data message."""

    def __init__(self) -> None:
        #: [arrival_ns, ts_ns, device, group, values, good, historical]
        self.records: list[list[Any]] = []
        self.metric_batches = 0
        self.malformed = 0
        self.devices: set[str] = set()
        #: Reason -> count over all values that were not good (timeouts, exceptions...).
        self.bad_reasons: Counter[str] = Counter()

    def on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        arrival = time.time_ns()
        try:
            doc = json.loads(message.payload)
            values = doc["values"]
            device = doc["device"]
            record = [
                arrival,
                int(doc["ts_ns"]),
                device,
                doc["group"],
                len(values),
                sum(1 for v in values.values() if v["q"] == "good"),
                bool(doc.get("historical", False)),
            ]
        except (ValueError, KeyError, TypeError):
            self.malformed += 1
            return
        if doc.get("attributes", {}).get("kind") == "metrics":
            self.metric_batches += 1
            return
        self.records.append(record)
        if record[5] != record[4]:
            self.bad_reasons.update(v.get("r", "") for v in values.values() if v["q"] != "good")
        if device not in self.devices:
            self.devices.add(device)
            print(f"first {device}", flush=True)


class SparkplugRecorder(Recorder):
    """The same records from a Sparkplug edge node's DBIRTH and DDATA messages."""

    def __init__(self, group_tags: int) -> None:
        super().__init__()
        from edge_agent.sinks.sparkplug import sparkplug_b_pb2

        self._payload = sparkplug_b_pb2.Payload
        self._group_tags = group_tags
        #: Sparkplug device id -> alias -> metric name, from its last DBIRTH.
        self._names: dict[str, dict[int, str]] = {}

    def on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        arrival = time.time_ns()
        parts = message.topic.split("/")
        if len(parts) != 5 or parts[2] not in ("DBIRTH", "DDATA"):
            return  # node messages, deaths, STATE: not data
        device = parts[4]
        try:
            payload = self._payload.FromString(bytes(message.payload))
            if parts[2] == "DBIRTH":
                self._names[device] = {m.alias: m.name for m in payload.metrics}
                return
            names = self._names[device]
            metrics = payload.metrics
            first = names[metrics[0].alias]
        except (ValueError, KeyError, IndexError):  # DecodeError is a ValueError
            self.malformed += 1
            return
        if "/" in first:  # Energy/1m/kwh ...: a metric batch, counted apart
            self.metric_batches += 1
            return
        good = 0
        for metric in metrics:
            if metric.is_null:
                continue
            if any(
                key == "Quality" and value.int_value != 192
                for key, value in zip(metric.properties.keys, metric.properties.values, strict=True)
            ):
                continue
            good += 1
        position = int(first[1:6])
        group = f"g{position // self._group_tags}" if self._group_tags else "g0"
        historical = any(metric.is_historical for metric in metrics)
        self.records.append(
            [arrival, payload.timestamp * 1_000_000, device, group, len(metrics), good, historical]
        )
        if device not in self.devices:
            self.devices.add(device)
            print(f"first {device}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.subscriber", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True, help="topic filter, e.g. bench/#")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--sparkplug-group-tags",
        type=int,
        default=None,
        help="decode Sparkplug B (DBIRTH, DDATA); tags per poll group, 0 = one group",
    )
    args = parser.parse_args(argv)

    recorder = (
        Recorder()
        if args.sparkplug_group_tags is None
        else SparkplugRecorder(args.sparkplug_group_tags)
    )
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    client.on_message = recorder.on_message

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            print(f"connect refused: {reason}", file=sys.stderr, flush=True)
            c.disconnect()
            return
        c.subscribe(args.topic, qos=1)

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
    client.connect("127.0.0.1", args.port, keepalive=60)
    client.loop_forever()
    args.out.write_text(
        json.dumps(
            {
                "records": recorder.records,
                "metric_batches": recorder.metric_batches,
                "malformed": recorder.malformed,
                "bad_reasons": dict(recorder.bad_reasons),
            },
            separators=(",", ":"),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

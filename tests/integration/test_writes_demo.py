"""Issue 18's "done when", over the wire: a setpoint written over MQTT to the demo plant.

The demo simulators serve on free ports; the agent runs configs/demo-plant.yaml as it
ships (its write: blocks), with a real mosquitto and an MQTT sink that takes commands.
The compressor is made steady for the test (always loaded, no noise, no faults), so its
power is exactly its loaded power: 30 kW at the rated 7 bar, and 30 x (1 - 0.07 x 1) =
27.9 kW at 6 bar (the model's 7 % per bar). A command sets 6 bar; what must follow:

* the result on ``cmd/result``: applied, 7.0 before, 6.0 read back;
* the audit record on ``edge/demo-plant/audit`` and in the audit file, the same;
* the simulated compressor took it (its ground truth lists the change);
* the published compressor power is 27.9 kW from the second the change acts, the
  compressor-meter's power 2.1 kW lower, and the compressor's energy counter runs at
  27.9 kW;
* the setpoint tag itself reads 6.0 at its next poll.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.service.agent import Agent
from edge_agent.writes.audit import AuditLog
from simulators.profile import parse_profile
from simulators.serve import serve_profile
from tests.mqtt_support import Subscriber
from tests.plant import DEMO_PORTS, PROFILE_FILE, demo_config
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]
PLANT = "demo-plant"
NS = 1_000_000_000
STEADY = (
    '          kind: compressor\n          shifts: [{start: "00:00", end: "24:00"}]'
    "   # utilities run around the clock\n"
)


def steady_profile() -> Any:
    """The demo profile on free ports, its compressor always loaded and without noise."""
    text = PROFILE_FILE.read_text()
    for port in DEMO_PORTS.values():
        text = text.replace(f"port: {port}", "port: 0")
    assert STEADY in text, "the demo profile's compressor changed: update the test"
    text = text.replace(
        STEADY,
        STEADY
        + "          power_noise: 0\n          mean_run_s: 1000000\n"
        + "          mean_idle_s: 0.001\n          fault_probability: 0\n",
    )
    return parse_profile(text, str(PROFILE_FILE))


def data(sub: Subscriber, device: str) -> list[dict[str, Any]]:
    sub.pump()
    topic = f"edge/{PLANT}/{device}/data"
    return [json.loads(m.payload) for m in sub.messages if m.topic == topic]


def of(sub: Subscriber, topic: str) -> list[dict[str, Any]]:
    sub.pump()
    return [json.loads(m.payload) for m in sub.messages if m.topic == topic]


def v(document: dict[str, Any], name: str) -> Any:
    return document["values"][name]["v"]


async def test_a_setpoint_written_over_mqtt_reaches_the_compressor_and_shows_in_power_and_energy(
    mosquitto: Mosquitto, subscriber_factory: SubscriberFactory, tmp_path: Path
) -> None:
    sub = await subscriber_factory(mosquitto.port, f"edge/{PLANT}/#")
    sinks = (
        "\nsinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {mosquitto.port}, "
        "keepalive: 5, commands: true}\n"
    )
    async with serve_profile(steady_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        config = demo_config(ports, tmp_path / "state", sinks)
        agent = Agent(config)
        task = asyncio.create_task(agent.run(), name="agent")
        try:

            def loaded() -> bool:
                seen = [
                    d
                    for d in data(sub, "compressor-1")
                    if d["group"] == "fast" and v(d, "state") == "run" and v(d, "power") == 30.0
                ]
                return len(seen) >= 2

            await sub.wait_until(loaded, "the compressor loaded at 30 kW", within=20)
            command = {
                "id": "set-6-bar",
                "tag": "pressure_setpoint",
                "value": 6.0,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            sent_at_ns = time.time_ns()
            sub._client.publish(f"edge/{PLANT}/compressor-1/cmd", json.dumps(command), qos=1)
            result_topic = f"edge/{PLANT}/compressor-1/cmd/result"
            await sub.wait_until(lambda: bool(of(sub, result_topic)), "the result", within=15)
            (result,) = of(sub, result_topic)
            after_ns = time.time_ns()

            def settled() -> bool:
                fast = [d for d in data(sub, "compressor-1") if d["group"] == "fast"]
                setting = [d for d in data(sub, "compressor-1") if d["group"] == "settings"]
                return len([d for d in fast if d["ts_ns"] > after_ns + 2 * NS]) >= 6 and any(
                    d["ts_ns"] > after_ns for d in setting
                )

            await sub.wait_until(settled, "six seconds of polls after the write", within=20)
            truth = plant.machine_truth("compressor-1")
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 15)

    assert result["id"] == "set-6-bar"
    assert (result["outcome"], result["accepted"], result["reason"]) == ("applied", True, "")
    assert (result["before"], result["read_back"], result["requested"]) == (7.0, 6.0, 6.0)
    assert result["sent"] == "holding 0 <- 0x0258 (function 6)"

    (audited,) = [d for d in of(sub, f"edge/{PLANT}/audit") if d["id"] == "set-6-bar"]
    assert (audited["channel"], audited["outcome"], audited["read_back"]) == (
        "mqtt",
        "applied",
        6.0,
    )
    in_file = list(AuditLog(tmp_path / "state" / "audit", 10**7, 3).read(None))
    assert [(r["id"], r["outcome"], r["before"]) for r in in_file] == [
        ("set-6-bar", "applied", 7.0)
    ]

    (change,) = truth.changes
    assert (change.quantity, change.value) == ("pressure_setpoint_bar", 6.0)
    acts_ns = change.effective_ms * 1_000_000  # the step after the write: the model's
    assert sent_at_ns - NS < acts_ns < after_ns + NS

    fast = [d for d in data(sub, "compressor-1") if d["group"] == "fast"]
    before = [d for d in fast if d["ts_ns"] < sent_at_ns]
    after = [d for d in fast if d["ts_ns"] > acts_ns + NS]
    assert before
    assert len(after) >= 6
    assert {v(d, "power") for d in before} == {30.0}
    assert {v(d, "power") for d in after} == {27.9}, "30 kW x (1 - 7 % per bar x 1 bar)"
    # Its energy counter (Wh) runs at 27.9 kW after the change.
    first, last = after[0], after[-1]
    hours = (last["ts_ns"] - first["ts_ns"]) / NS / 3600
    rate_kw = (v(last, "energy") - v(first, "energy")) / hours
    assert rate_kw == pytest.approx(27.9, abs=0.002 / hours), rate_kw

    meter = data(sub, "compressor-meter")
    meter_before = {round(v(d, "power_active"), 3) for d in meter if d["ts_ns"] < sent_at_ns}
    meter_after = {round(v(d, "power_active"), 3) for d in meter if d["ts_ns"] > acts_ns + NS}
    assert meter_before
    assert meter_after
    assert max(meter_after) < min(meter_before)
    assert min(meter_before) - max(meter_after) == pytest.approx(2.1, abs=0.05)

    settings = [d for d in data(sub, "compressor-1") if d["group"] == "settings"]
    assert v(settings[-1], "pressure_setpoint") == 6.0

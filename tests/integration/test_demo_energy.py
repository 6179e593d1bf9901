"""Issue 16's "done when", over the wire: the demo plant's energy parts on both sinks.

The demo simulators serve on free ports; the agent runs configs/demo-plant.yaml as it
ships (its tariff, its demand limit, its gas meter, its baseline) with a real mosquitto
and a real VictoriaMetrics as sinks. Two changes make it quick: 20-second windows
instead of 1 minute (any duration that divides an hour is a window), and the baseline
fitted for 20-second windows from the demo's own CSV scaled down (15-minute rows as
20-second rows: energy and parts / 45, temperature as is, which is the same linear
model: the intercept and the temperature term are per window, the energy per part is
not). The demand guard keeps the demo's limit and quiet start: it must fire within the
first minute of the agent.

What must arrive, on MQTT and in VictoriaMetrics: ``tariff`` windows priced by the
calendar (cost = sum of kWh x price of its periods, in CNY), live ``demand_guard``
batches, a ``demand_limit`` event start, the gas meter's ``carrier`` windows (Nm3,
kgce = amount x the bill's calorific value / 29.3076), a valid ``baseline`` and
``savings`` from the first full window on.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import PlantConfig
from edge_agent.service.agent import Agent
from simulators.serve import serve_profile
from tests.mqtt_support import Subscriber
from tests.plant import CONFIG_FILE, demo_config, demo_profile
from tests.servers import Mosquitto, VictoriaMetrics

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]
PLANT = "demo-plant"
NS = 1_000_000_000
WINDOW_S = 20
#: The demo's example tariff (configs/demo-plant.yaml), per kWh.
PRICES = {"critical_peak": 1.3, "peak": 1.05, "flat": 0.62, "valley": 0.25, "deep_valley": 0.15}
#: dryer-gas: calorific value 35.59 MJ/Nm3 from the bill; 1 kgce = 29.3076 MJ (GB/T 2589).
GAS_KGCE_PER_NM3 = 35.59 / 29.3076
#: The agent runs at most this long (seconds): every figure has arrived well before.
WITHIN_S = 75.0


def scaled_baseline(path: Path) -> Path:
    """configs/demo-baseline.csv for 20-second windows (see the module docstring)."""
    factor = 15 * 60 / WINDOW_S
    lines = (CONFIG_FILE.parent / "demo-baseline.csv").read_text().splitlines()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert len(rows) > 1000
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["energy_kwh", "parts_good", "temperature"])
        for row in rows:
            writer.writerow(
                [
                    float(row["energy_kwh"]) / factor,
                    float(row["parts_good"]) / factor,
                    row["temperature"],
                ]
            )
    return path


def plant_config(
    ports: dict[str, int], tmp_path: Path, broker: Mosquitto, victoria: VictoriaMetrics
) -> PlantConfig:
    sinks = (
        "\nsinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {broker.port}, keepalive: 5}}\n"
        f"  - {{name: tsdb, type: influxdb, url: '{victoria.url}', org: demo, bucket: edge,"
        " timeout: 5s}\n"
    )
    csv_path = scaled_baseline(tmp_path / "baseline-20s.csv")
    config = demo_config(
        ports,
        tmp_path / "state",
        sinks,
        **{
            "windows: [1m, 15m, 1h, 1d, shift]": "windows: [20s, 15m, 1d]",
            "      window: 15m\n": "      window: 20s\n",
            "fit: {csv: demo-baseline.csv}": f"fit: {{csv: '{csv_path}'}}",
        },
    )
    metrics = config.metrics
    assert metrics is not None
    assert metrics.windows == ["20s", "15m", "1d"]
    (baseline,) = metrics.baselines
    assert baseline.window == "20s"
    (guarded,) = [m for m in metrics.meters if m.demand_guard is not None]
    assert guarded.demand_guard is not None
    assert guarded.demand_guard.limit_kw == 12, "the demo's own limit"
    return config


def documents(sub: Subscriber, topic_end: str) -> list[dict[str, Any]]:
    sub.pump()
    return [
        {**json.loads(m.payload), "_topic": m.topic}
        for m in sub.messages
        if m.topic.endswith(topic_end)
    ]


def of_family(sub: Subscriber, family: str, device: str | None = None) -> list[dict[str, Any]]:
    return [
        d
        for d in documents(sub, "/metrics")
        if d["attributes"].get("family") == family and device in (None, d["device"])
    ]


def value(document: dict[str, Any], name: str) -> Any:
    return document["values"][name]["v"]


def full_savings(sub: Subscriber, first_poll_ns: int) -> list[dict[str, Any]]:
    """Savings of windows that started after the agent's first poll (full windows)."""
    return [d for d in of_family(sub, "savings", "oven-savings") if d["ts_ns"] >= first_poll_ns]


async def test_every_energy_part_of_the_demo_reaches_mqtt_and_victoria_metrics(
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    subscriber_factory: SubscriberFactory,
    tmp_path: Path,
) -> None:
    sub = await subscriber_factory(mosquitto.port, f"edge/{PLANT}/#")
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        config = plant_config(ports, tmp_path, mosquitto, victoria)
        agent = Agent(config)
        started = time.time()
        task = asyncio.create_task(agent.run(), name="agent")
        try:
            await sub.wait_until(
                lambda: bool(documents(sub, "/line-meter/data")), "the first poll", within=15
            )
            first_poll_ns = min(d["ts_ns"] for d in documents(sub, "/line-meter/data"))
            await sub.wait_until(
                lambda: any(
                    (d["attributes"].get("event"), d["attributes"].get("state"))
                    == ("demand_limit", "start")
                    for d in _events(sub)
                ),
                "a demand_limit event",
                within=60 - (time.time() - started),
            )
            guard_fired_s = time.time() - started

            def arrived() -> bool:
                return (
                    bool(full_savings(sub, first_poll_ns))
                    and bool(of_family(sub, "carrier", "dryer-gas"))
                    and bool(of_family(sub, "baseline", "oven-savings"))
                    and bool(of_family(sub, "tariff", PLANT))
                )

            await sub.wait_until(
                arrived, "tariff, carrier, baseline and savings", within=WITHIN_S - guard_fired_s
            )
            found = await _in_victoria(victoria, started + WITHIN_S + 15)
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 15)

    assert guard_fired_s < 60, "the demo's demand limit fires within the first minute"
    _check_mqtt(sub, first_poll_ns)
    _check_victoria(found)


def _events(sub: Subscriber) -> list[dict[str, Any]]:
    return documents(sub, f"edge/{PLANT}/events")


def _check_mqtt(sub: Subscriber, first_poll_ns: int) -> None:
    # No report of a day or shift not yet over (today's daily report was sent at start).
    for report in documents(sub, "/reports/daily") + documents(sub, "/reports/shift"):
        assert json.loads(value(report, "report"))["end_s"] <= time.time(), report["attributes"]

    # Tariff: per window, the cost is the kWh of each period at its price (CNY).
    tariff = of_family(sub, "tariff")
    assert {d["device"] for d in tariff} >= {PLANT, "line-meter", "oven-meter"}
    assert "dryer-gas" not in {d["device"] for d in tariff}, "gas is not priced per kWh"
    for doc in tariff:
        assert doc["attributes"]["currency"] == "CNY"
        periods = {name[4:]: v["v"] for name, v in doc["values"].items() if name.startswith("kwh_")}
        assert set(periods) == set(PRICES), doc
        if value(doc, "cost") is None:
            continue
        expected = sum(kwh * PRICES[p] for p, kwh in periods.items() if kwh is not None)
        assert value(doc, "cost") == pytest.approx(expected, abs=1e-3), doc
        parts = sum(value(doc, f"cost_{p}") or 0.0 for p in PRICES)
        assert value(doc, "cost") == pytest.approx(parts, abs=1e-3)
    priced = [d for d in tariff if d["device"] == "line-meter" and value(d, "cost")]
    assert priced, "the line meter's energy is priced"

    # Demand guard: live, every poll of the line meter, in the running 15-minute block.
    guard = of_family(sub, "demand_guard", "line-meter")
    assert len(guard) >= 10
    for doc in guard[-5:]:
        window = doc["window"]
        assert window["name"] == "15m"
        assert window["end_ns"] - window["start_ns"] == 15 * 60 * NS
        assert value(doc, "limit_kw") == 12
        assert value(doc, "predicted_kw") > 12
        # The power to shed for the rest of the block: at least the block's excess.
        assert value(doc, "shed_kw") >= value(doc, "predicted_kw") - 12 - 0.002
        assert 0 <= value(doc, "minutes_left") <= 15

    # The demand_limit event's start on edge/demo-plant/events.
    starts = [
        d
        for d in _events(sub)
        if d["attributes"]
        == {
            "kind": "event",
            "event": "demand_limit",
            "severity": "critical",
            "state": "start",
        }
    ]
    assert starts, _events(sub)
    start = starts[0]
    assert start["_topic"] == f"edge/{PLANT}/events"
    assert start["device"] == "line-meter"
    assert value(start, "end_s") is None
    assert value(start, "limit_kw") == 12
    assert value(start, "predicted_kw") > 12
    assert value(start, "shed_kw") > 0
    assert "12" in value(start, "reason")

    # The gas meter: its own family, in Nm3, converted with the bill's calorific value.
    carrier = of_family(sub, "carrier", "dryer-gas")
    assert not of_family(sub, "energy", "dryer-gas"), "gas is not electricity"
    for doc in carrier:
        assert doc["attributes"]["unit"] == "Nm3"
        assert doc["attributes"]["carrier"] == "natural_gas"
        amount = value(doc, "amount")
        if amount is not None:
            assert value(doc, "kgce") == pytest.approx(amount * GAS_KGCE_PER_NM3, abs=1e-3)
    assert any(value(d, "amount") for d in carrier), "the dryer burns gas"

    # The baseline: fitted at start from the CSV, valid, published before any savings.
    (baseline, *_) = of_family(sub, "baseline", "oven-savings")
    assert value(baseline, "valid") == 1
    assert value(baseline, "r2") >= 0.75
    assert value(baseline, "cv_rmse") <= 0.2
    assert value(baseline, "n") > 1000
    assert value(baseline, "coef_parts_good") == pytest.approx(0.4, rel=0.05)

    # Savings from the first full window: expected, actual, avoided, and the running total.
    savings = of_family(sub, "savings", "oven-savings")
    full = full_savings(sub, first_poll_ns)[0]
    assert full["window"]["end_ns"] - full["window"]["start_ns"] == WINDOW_S * NS
    for name in ("expected_kwh", "actual_kwh", "avoided_kwh", "cumulative_avoided_kwh"):
        assert full["values"][name]["q"] == "good", full
    assert value(full, "avoided_kwh") == pytest.approx(
        value(full, "expected_kwh") - value(full, "actual_kwh"), abs=2e-6
    )
    assert value(full, "avoided_kgce") == pytest.approx(value(full, "avoided_kwh") * 0.1229, 1e-3)
    counted = [
        d
        for d in savings
        if d["ts_ns"] <= full["ts_ns"]
        and d["values"]["actual_kwh"]["q"] == "good"  # its coverage is above the minimum
        and value(d, "avoided_kwh") is not None
    ]
    assert value(full, "cumulative_avoided_kwh") == pytest.approx(
        sum(value(d, "avoided_kwh") for d in counted), abs=1e-5
    )


async def _in_victoria(victoria: VictoriaMetrics, deadline: float) -> dict[str, Any]:
    """Each family's series once the InfluxDB sink has written them (the agent still runs)."""
    selectors = {
        "tariff": '{__name__="tariff_cost", device="line-meter"}',
        "guard": '{__name__="demand_guard_predicted_kw", device="line-meter"}',
        "event": '{__name__="events_shed_kw", event="demand_limit", state="start"}',
        "carrier": '{__name__="carrier_kgce", device="dryer-gas"}',
        "carrier_amount": '{__name__="carrier_amount", device="dryer-gas"}',
        "baseline": '{__name__="baseline_valid", device="oven-savings"}',
        "savings": '{__name__="savings_expected_kwh", device="oven-savings"}',
    }
    found: dict[str, Any] = {}
    while True:
        for key, selector in selectors.items():
            if key not in found:
                series = victoria.export(selector)  # loopback: a few milliseconds
                if series:
                    found[key] = series
        if len(found) == len(selectors) or time.time() > deadline:
            return found
        await asyncio.sleep(0.5)


def _check_victoria(found: dict[str, Any]) -> None:
    missing = {"tariff", "guard", "event", "carrier", "carrier_amount", "baseline", "savings"}
    assert set(found) == missing, f"not in VictoriaMetrics: {missing - set(found)}"
    (event, *_) = found["event"]
    assert event["metric"]["plant"] == PLANT
    assert event["metric"]["device"] == "line-meter"
    assert event["metric"]["severity"] == "critical"
    assert all(v > 0 for v in event["values"])
    assert all(v > 12 for s in found["guard"] for v in s["values"])
    assert {s["metric"]["window"] for s in found["tariff"]} >= {"20s"}
    assert all(v == 1 for s in found["baseline"] for v in s["values"])
    amounts = {
        (s["metric"]["window"], t): v
        for s in found["carrier_amount"]
        for t, v in zip(s["timestamps"], s["values"], strict=True)
    }
    for series in found["carrier"]:
        for t, kgce in zip(series["timestamps"], series["values"], strict=True):
            amount = amounts[(series["metric"]["window"], t)]
            assert kgce == pytest.approx(amount * GAS_KGCE_PER_NM3, abs=1e-3)

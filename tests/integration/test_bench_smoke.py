"""The benchmark harness runs end to end, so it does not rot between measurement campaigns.

``python -m bench smoke`` is the whole harness at a toy size (2 devices x 60 tags,
a 3 s window): simulators, mosquitto, the subscriber, the agent and the floor client,
each a real process on loopback. This checks the report is complete and nothing was
lost; it asserts no speed (figures belong in docs/BENCHMARKS.md, not in tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str, timeout: float = 100.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_smoke_run_reports_every_figure_and_loses_nothing(tmp_path: Path) -> None:
    result = run_bench("smoke", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    [path] = tmp_path.glob("*-smoke-*.json")
    record = json.loads(path.read_text())

    delivery = record["delivery"]
    # devices x (tags + the code of each of the 5 enum tags) x ticks in the window
    assert delivery["values_expected"] == 2 * (60 + 5) * 3
    assert delivery["values_delivered"] == delivery["values_expected"]
    assert delivery["values_lost"] == 0
    assert delivery["batches_duplicated"] == 0
    assert delivery["malformed_messages"] == 0
    for figure in ("jitter_ms", "latency_ms"):
        assert delivery[figure]["p50"] is not None
        assert delivery[figure]["p99"] >= delivery[figure]["p50"]

    agent = record["agent"]
    assert agent["cpu_us_per_value"] > 0
    assert agent["peak_rss_mb"] > 0
    assert record["floor"]["values_read"] == 2 * 60 * 3  # the floor reads the tags alone
    assert record["floor"]["cpu_us_per_value"] > 0
    assert record["agent_floor_ratio"] > 0
    assert record["pipeline"] == ["modbus", "metrics", "outbox", "mqtt", "influxdb", "subscriber"]
    # Both sinks confirmed every sample the outbox took (the agent's /metrics, after drain).
    after = record["agent_counters"]["after_drain"]
    assert after["appended_total"] > 0
    for sink in ("mqtt", "influxdb"):
        assert after[sink]["sent_total"] == after["appended_total"]
    assert delivery["sink_unconfirmed"] == {"influxdb": 0, "mqtt": 0}
    assert record["command"] == f"python -m bench smoke --out {tmp_path}"
    assert set(record["targets"]) >= {"values lost == 0", "agent/floor <= 1.5"}
    # The human table names every figure the issue asks for.
    for label in ("values/s delivered", "values lost", "CPU µs per value", "RSS", "jitter"):
        assert label in result.stdout


def test_the_opcua_and_outbox_scenarios_run_and_write_their_records(tmp_path: Path) -> None:
    # Toy sizes: 50 nodes for a second per measurement; 200 outbox batches, no outage
    # (the outage itself runs scenario 1's pipeline, covered by the smoke run above).
    opcua = run_bench(
        "opcua", "--nodes", "50", "--duration", "1s", "--rounds", "1", "--out", str(tmp_path)
    )
    assert opcua.returncode == 0, opcua.stdout + opcua.stderr
    [path] = tmp_path.glob("*-opcua.json")
    runs = json.loads(path.read_text())["runs"]
    assert [(r["nodes"], r["mode"]) for r in runs] == [(50, "read"), (50, "subscribe")]
    for run in runs:
        assert run["agent_values_per_s"] > 0
        assert run["floor_values_per_s"] > 0
    summaries = json.loads(path.read_text())["summaries"]
    assert [(s["nodes"], s["mode"], s["summary"]["pairs"]) for s in summaries] == [
        (50, "read", 1),
        (50, "subscribe", 1),
    ]

    outbox = run_bench("outbox", "--append-batches", "200", "--out", str(tmp_path))
    assert outbox.returncode == 0, outbox.stdout + outbox.stderr
    [path] = tmp_path.glob("*-outbox.json")
    rates = json.loads(path.read_text())["rates"]
    assert len(rates["append"]) == 4
    assert rates["replay"]["samples"] == 200 * 20

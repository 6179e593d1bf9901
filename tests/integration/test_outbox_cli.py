"""``edge-agent outbox status`` as a user runs it, on an outbox the agent's code wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.config import OutboxConfig
from edge_agent.model import Quality, SampleBatch, iso_utc_ms
from edge_agent.outbox import Outbox
from tests.plant import ROOT

pytestmark = pytest.mark.integration

PLANT = """
plant: {{name: p1}}
state_dir: {state}
devices:
  - name: meter
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1}}
    poll_groups:
      - {{interval: 1s, tags: [{{name: v, address: 0}}]}}
sinks:
  - {{name: broker, type: mqtt, host: 127.0.0.1}}
  - {{name: tsdb, type: influxdb, url: "http://127.0.0.1:8086", org: o, bucket: b}}
"""


def _status(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "outbox", "status", "-c", str(config), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


async def test_status_shows_the_backlog_per_sink(tmp_path: Path) -> None:
    config = tmp_path / "plant.yaml"
    config.write_text(PLANT.format(state=tmp_path / "state"))
    first = _status(config)
    assert first.returncode == 0
    assert first.stdout.startswith("no outbox at ")

    outbox = Outbox(OutboxConfig(), tmp_path / "state" / "outbox.sqlite3", ["broker", "tsdb"])
    await outbox.start()
    for i in range(3):
        outbox.append(
            SampleBatch(
                "meter", "default", 1_795_000_000_000_000_000 + i, ("v",), [i], [Quality.GOOD], [""]
            )
        )
    view = outbox.view("broker")
    view.ack((await view.peek(10))[-1].seq)
    await outbox.close()

    shown = _status(config)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "3 batches" in lines[0]
    assert lines[2].split()[:3] == ["broker", "0", "0"]
    assert lines[3].split()[:2] == ["tsdb", "3"]
    assert iso_utc_ms(1_795_000_000_000_000_000) in lines[3]  # the oldest batch's time

    as_json = json.loads(_status(config, "--json").stdout)
    assert {s["sink"]: s["rows"] for s in as_json["sinks"]} == {"broker": 0, "tsdb": 3}
    assert as_json["sinks"][1]["oldest_ts_ns"] == 1_795_000_000_000_000_000


def test_run_with_an_outbox_that_cannot_be_made_says_why_and_exits_1(tmp_path: Path) -> None:
    """A state directory that cannot hold the outbox at all (a file where a directory
    should be): one clear line, exit 1, nothing started. (A full or read-only disk is not
    this: the agent starts and keeps batches in memory, tests/unit/test_outbox_open.py.)"""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = tmp_path / "plant.yaml"
    config.write_text(PLANT.format(state=blocker / "state"))
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "-c", str(config), "--duration", "30"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"edge-agent: cannot open the outbox {blocker / 'state'}"), last
    assert "Traceback" not in result.stderr

"""Metric batches in the MQTT payload: the window travels readable and exact."""

from __future__ import annotations

import json

from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.payload import encode_batch

START_NS = 1_795_719_600_000_000_000  # 2026-11-26T19:00:00Z


def metric_batch(**attributes: str) -> SampleBatch:
    return SampleBatch(
        "line-meter",
        "metrics:15m",
        START_NS,
        ("energy_kwh", "coverage"),
        [12.5, None],
        [Quality.GOOD, Quality.UNCERTAIN],
        ["", "no data"],
        attributes={
            "kind": "metrics",
            "family": "energy",
            "window": "15m",
            "window_start": str(START_NS),
            "window_end": str(START_NS + 900 * 10**9),
            **attributes,
        },
    )


def test_a_metric_message_carries_its_window() -> None:
    document = json.loads(encode_batch(metric_batch(), "plant-a", "Hall 3"))
    assert document["window"] == {
        "name": "15m",
        "start": "2026-11-26T19:00:00.000Z",
        "end": "2026-11-26T19:15:00.000Z",
        "start_ns": START_NS,
        "end_ns": START_NS + 900 * 10**9,
    }
    assert document["ts_ns"] == START_NS
    assert document["attributes"]["family"] == "energy"
    assert document["values"]["coverage"] == {"v": None, "q": "uncertain", "r": "no data"}


def test_a_shift_window_names_its_shift() -> None:
    document = json.loads(encode_batch(metric_batch(window="shift", shift="early"), "p", ""))
    assert document["window"]["shift"] == "early"


def test_attributes_that_are_not_a_metric_window_pass_as_they_are() -> None:
    batch = metric_batch(window_start="yesterday")
    document = json.loads(encode_batch(batch, "p", ""))
    assert "window" not in document
    assert document["attributes"]["window_start"] == "yesterday"

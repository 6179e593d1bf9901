"""Sparkplug B 3.0 conformance of the edge node, shown on captured traffic.

The scenarios (tests/sparkplug_story.py) run once per module against the real
``edge-agent run`` process, our Modbus simulators and a real mosquitto; every assertion of
tests/sparkplug_assertions.py is a test case named by its spec id, checked on what the wire
tap saw the node send and what the recorder received. docs/SPARKPLUG.md, "Conformance",
lists them with their result.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from tests.sparkplug_assertions import ASSERTIONS, Assertion
from tests.sparkplug_story import DEVICE_IDS, Story, good_samples, run_story
from tests.sparkplug_tahu import check_all, disagreements, tahu_decode
from tests.sparkplug_view import View

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    """The scenarios, run once for every assertion of the module (about 40 s)."""
    return asyncio.run(run_story(tmp_path_factory.mktemp("sparkplug")))


@pytest.fixture(scope="module")
def view(story: Story) -> View:
    return View(story)


@pytest.mark.parametrize("assertion", ASSERTIONS, ids=lambda a: a.id)
def test_edge_node_assertion(assertion: Assertion, view: View) -> None:
    problems = assertion.check(view)
    assert not problems, (
        f"[{assertion.id}] {assertion.statement}: broken {len(problems)} times:\n"
        + "\n".join(problems[:15])
    )


def test_every_captured_payload_decodes_the_same_with_eclipse_tahu(view: View) -> None:
    """What the node sent (and the Wills it registered, and what the broker delivered)
    read by Eclipse Tahu's JavaScript decoder equals our reading, field by field."""
    payloads = [s.payload for s in view.sent]
    payloads += [s.connect.will_payload for s in view.sessions.values() if s.connect.will_payload]
    payloads += [m.payload for m in view.delivered if m.message_type != "STATE"]
    assert len(payloads) > 100
    found = check_all(payloads)
    assert not found, "\n".join(
        f"{p[:40].hex()}...: {'; '.join(d[:5])}" for p, d in list(found.items())[:10]
    )


def test_outages_lose_nothing_and_stored_data_arrives_flagged_historical(
    story: Story, view: View
) -> None:
    """Broker restart, kill -9 and the host outage: every read the simulators answered
    reached the host (at most the one in flight at the kill is lost); a value is flagged
    is_historical exactly when its device's current birth already carried one at least as
    new (the outage's data, replayed after the new birth); within a session a
    device's data comes in order, as two lanes at most (stored data oldest first, paced,
    beside live data in collection order)."""
    samples = good_samples(story.delivered)
    for device, device_id in DEVICE_IDS.items():
        got = {t for t, _ in samples[device_id]}
        assert 0 <= story.served[device] - len(got) <= 1, (device, story.served[device], len(got))
    # Collected while the host was offline: must come back, flagged historical.
    offline_ms = story.phases["host"].start_ns // 1_000_000 + 500
    for device_id in DEVICE_IDS.values():
        held = [(t, h) for t, h in samples[device_id] if offline_ms < t < _rebirth_ms(view)]
        assert held, f"{device_id}: nothing collected during the host outage arrived"
        assert all(h for _, h in held), f"{device_id}: outage data not flagged historical"
    for session in view.sessions.values():
        # alias -> the time of the value its device's latest DBIRTH carried (None: null)
        born: dict[int, int | None] = {}
        stamps: dict[str, list[int]] = {}
        for sent in session.sent:
            if sent.message_type == "DBIRTH":
                born.update(
                    (m.alias, None if m.is_null else m.timestamp) for m in sent.decoded.metrics
                )
            elif sent.message_type == "DDATA" and sent.decoded.metrics:
                stamps.setdefault(sent.device, []).append(sent.decoded.metrics[0].timestamp)
                for metric in sent.decoded.metrics:
                    carried = born[metric.alias]
                    # History exactly when the host already holds a value at least as new.
                    stale = carried is not None and metric.timestamp <= carried
                    assert metric.is_historical == stale, (
                        f"{sent}: alias {metric.alias} at {metric.timestamp}, the birth "
                        f"carried {carried}: is_historical should be {stale}"
                    )
        for device_id, seq in stamps.items():
            assert _lanes(seq) <= 2, f"session {session.number} {device_id}: out of order {seq}"


def _lanes(stamps: list[int]) -> int:
    """The fewest increasing runs ``stamps`` splits into (= its longest decreasing
    subsequence): 1 = in order; 2 = two ordered lanes interleaved."""
    tails: list[int] = []  # greedy patience: the last stamp of each lane
    for t in stamps:
        fits = [i for i, tail in enumerate(tails) if tail <= t]
        if fits:
            best = max(fits, key=lambda i: tails[i])
            tails[best] = t
        else:
            tails.append(t)
    return len(tails)


def _rebirth_ms(view: View) -> int:
    """When the node was born again after the host outage (payload time of the NBIRTH)."""
    host = view.story.phases["host"]
    births = [s for s in view.sent_of("NBIRTH") if s.at_ns > host.start_ns]
    return births[0].decoded.timestamp


# ---------------------------------------------------------------------- the decoder itself


def _payload(**metric_fields: object) -> bytes:
    payload = pb.Payload(timestamp=1_795_000_000_000, seq=7)
    for name, fields in metric_fields.items():
        metric = payload.metrics.add(name=name)
        for key, value in dict(fields).items():  # type: ignore[call-overload]
            if key == "properties":
                for prop, (kind, field, content) in value.items():
                    metric.properties.keys.append(prop)
                    pv = metric.properties.values.add(type=kind)
                    setattr(pv, field, content)
            else:
                setattr(metric, key, value)
    return payload.SerializeToString()


SAMPLES = [
    _payload(
        temperature={
            "alias": 3,
            "datatype": 9,
            "float_value": 21.5,
            "timestamp": 1_795_000_000_000,
        },
        count={"alias": 4, "datatype": 3, "int_value": (1 << 32) - 5},  # Int32 -5
        big={"alias": 5, "datatype": 4, "long_value": (1 << 64) - 1},  # Int64 -1
        unsigned={"alias": 6, "datatype": 8, "long_value": (1 << 64) - 1},
        flag={"alias": 7, "datatype": 11, "boolean_value": True, "is_historical": True},
        text={"alias": 8, "datatype": 12, "string_value": "Läuft 运行"},
        missing={"alias": 9, "datatype": 10, "is_null": True},
        nan={"alias": 10, "datatype": 10, "double_value": math.nan},
        quality={
            "alias": 11,
            "datatype": 10,
            "double_value": 1.0,
            "properties": {
                "Quality": (3, "int_value", 0),
                "Reason": (12, "string_value", "timeout"),
            },
        },
    ),
    pb.Payload(
        timestamp=1, metrics=[pb.Payload.Metric(alias=3, float_value=-0.0)]
    ).SerializeToString(),
]


def test_tahu_agrees_on_payloads_built_with_our_module() -> None:
    docs = tahu_decode(SAMPLES)
    for payload, doc in zip(SAMPLES, docs, strict=True):
        assert disagreements(payload, doc) == []
    assert docs[0]["tahu"]["metrics"][1]["value"] == -5  # Tahu's own reading of an Int32


def test_tahu_comparison_reports_a_difference() -> None:
    """The comparison can fail: Tahu's reading of one payload against ours of another."""
    other = pb.Payload.FromString(SAMPLES[0])
    other.metrics[0].float_value = 21.25
    other.metrics[4].ClearField("is_historical")
    found = disagreements(other.SerializeToString(), tahu_decode([SAMPLES[0]])[0])
    assert any("(temperature) content" in d for d in found), found
    assert any("is_historical" in d for d in found), found

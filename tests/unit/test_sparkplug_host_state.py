"""STATE messages of the primary host: the 3.0 JSON payload, and older messages ignored
[tck-id-message-flow-edge-node-birth-publish-phid-wait-online,
tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp,
tck-id-operational-behavior-edge-node-termination-host-offline-timestamp]."""

from __future__ import annotations

import pytest

from edge_agent.sinks.sparkplug.host_state import (
    HostState,
    HostWatch,
    OfflineRound,
    StateError,
    Verdict,
    parse_state,
)
from edge_agent.sinks.sparkplug.topics import Topics, state_topic


def test_the_3_0_payload_parses() -> None:
    assert parse_state(b'{"online": true, "timestamp": 1700000000000}') == HostState(
        True, 1700000000000
    )


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"ONLINE", "Sparkplug 2.2"),
        (b"\xff\xfe", "not a JSON document"),
        (b"[true]", "not a JSON object"),
        (b'{"online": "true", "timestamp": 1}', "'online' must be true or false"),
        (b'{"online": true}', "'timestamp' must be a whole number"),
        (b'{"online": true, "timestamp": 1.5}', "'timestamp' must be a whole number"),
        (b'{"online": true, "timestamp": true}', "'timestamp' must be a whole number"),
        (b'{"online": true, "timestamp": -1}', "'timestamp' must be a whole number"),
    ],
)
def test_what_is_not_a_3_0_state_payload_is_refused_with_the_reason(
    payload: bytes, says: str
) -> None:
    with pytest.raises(StateError, match=says):
        parse_state(payload)


def test_the_newest_state_wins_and_an_older_one_is_ignored() -> None:
    watch = HostWatch()
    assert not watch.online
    assert watch.offer(b'{"online": true, "timestamp": 100}') is Verdict.ONLINE
    assert watch.online
    # An old session's Will, delivered late: ignored, the host stays online.
    assert watch.offer(b'{"online": false, "timestamp": 99}') is Verdict.STALE
    assert watch.online
    # Equal or newer counts.
    assert watch.offer(b'{"online": false, "timestamp": 100}') is Verdict.OFFLINE
    assert not watch.online
    assert watch.offer(b'{"online": true, "timestamp": 50}') is Verdict.STALE
    assert not watch.online
    assert watch.offer(b'{"online": true, "timestamp": 200}') is Verdict.ONLINE


def test_timestamps_are_compared_per_broker_only() -> None:
    """Each broker's STATE carries the host's connection time to that broker: B's online,
    older than A's offline, is B's news; A's order is kept across the visit to B."""
    watch = HostWatch()
    watch.at("a:1883")
    assert watch.offer(b'{"online": false, "timestamp": 200}') is Verdict.OFFLINE
    watch.at("b:1883")
    assert watch.state is None
    assert watch.offer(b'{"online": true, "timestamp": 100}') is Verdict.ONLINE
    watch.at("a:1883")
    assert not watch.online
    assert watch.offer(b'{"online": true, "timestamp": 150}') is Verdict.STALE


def test_the_walk_stops_once_every_broker_said_offline_until_a_new_round() -> None:
    walk = OfflineRound(3)
    assert walk.offline("a")
    assert walk.offline("b")
    assert walk.offline("b"), "the same broker twice is not the whole list"
    assert not walk.offline("c")
    assert not walk.offline("a")
    walk.reset()
    assert walk.offline("c")
    assert not OfflineRound(1).offline("a"), "one broker: the node waits where it is"


def test_an_invalid_payload_changes_nothing_and_says_why() -> None:
    watch = HostWatch()
    watch.offer(b'{"online": true, "timestamp": 100}')
    assert watch.offer(b"OFFLINE") is Verdict.INVALID
    assert watch.online
    assert "2.2" in watch.last_error


def test_topics_of_one_edge_node() -> None:
    topics = Topics("Plant 1", "line-1")
    assert topics.nbirth == "spBv1.0/Plant 1/NBIRTH/line-1"
    assert topics.ndeath == "spBv1.0/Plant 1/NDEATH/line-1"
    assert topics.ncmd == "spBv1.0/Plant 1/NCMD/line-1"
    assert topics.dcmd == "spBv1.0/Plant 1/DCMD/line-1/+"
    assert topics.device("DDATA", "meter") == "spBv1.0/Plant 1/DDATA/line-1/meter"
    assert state_topic("scada") == "spBv1.0/STATE/scada"
    assert topics.command("spBv1.0/Plant 1/NCMD/line-1") is not None
    dcmd = topics.command("spBv1.0/Plant 1/DCMD/line-1/meter")
    assert dcmd is not None
    assert dcmd.device == "meter"
    assert topics.command("spBv1.0/Plant 1/DCMD/line-1/") is None
    assert topics.command("spBv1.0/Plant 1/DCMD/line-1/a/b") is None
    assert topics.command("spBv1.0/Other/NCMD/line-1") is None

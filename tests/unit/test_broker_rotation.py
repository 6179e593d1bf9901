"""The failover rules of a broker list (pure), the broker config, and the resend count."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.config import BrokerEndpoint, MqttSinkConfig, PlantIdentity, SparkplugSinkConfig
from edge_agent.config.mqtt import broker_problems
from edge_agent.errors import ConfigError
from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.broker_rotation import BrokerRotation, broker_order
from edge_agent.sinks.brokers import BrokerSwitch, brokers_of
from edge_agent.sinks.resends import Resends


def _walk(rotation: BrokerRotation[str], events: str) -> list[str]:
    """Drive ``rotation`` with events: ``f`` an attempt failed, ``c`` connected, ``l`` the
    connection lost quickly, ``L`` lost after it lasted. Each step records the broker to
    try next, with ``*`` when the owner backs off first."""
    seen = []
    for event in events:
        if event == "c":
            rotation.connected()
            continue
        back_off = rotation.failed(lasted=event == "L")
        seen.append(rotation.current + ("*" if back_off else ""))
    return seen


def test_a_failed_attempt_goes_to_the_next_broker_at_once() -> None:
    rotation = BrokerRotation(["a", "b", "c"])
    assert rotation.current == "a"
    # a and b refuse, c works: no backoff on the way.
    assert _walk(rotation, "ff") == ["b", "c"]


def test_only_a_full_failed_round_backs_off_and_it_starts_again_from_the_first() -> None:
    rotation = BrokerRotation(["a", "b", "c"])
    assert _walk(rotation, "fff") == ["b", "c", "a*"]
    assert _walk(rotation, "fff") == ["b", "c", "a*"]


def test_a_lost_connection_goes_to_the_next_and_counts_as_the_first_failure_of_a_round() -> None:
    rotation = BrokerRotation(["a", "b", "c"])
    _walk(rotation, "fc")  # connected to b
    assert rotation.current == "b"
    # b is lost after hours: c at once, then a; a failing as well ends the round (b, c, a).
    assert _walk(rotation, "Lff") == ["c", "a", "a*"]


def test_connected_to_a_later_broker_stays_there() -> None:
    """Ordered means "try the preferred first", not "go back to it": nothing moves while
    connected, and a reconnect after a loss goes on down the list, not back to the top."""
    rotation = BrokerRotation(["a", "b", "c"])
    _walk(rotation, "fc")
    assert rotation.current == "b"
    assert _walk(rotation, "L") == ["c"]


def test_connections_that_do_not_last_do_not_make_a_tight_loop() -> None:
    """A broker that accepts and drops at once (a client id taken over, a refused
    subscription) counts as a failure of the round: a round of them backs off."""
    rotation = BrokerRotation(["a", "b"])
    assert _walk(rotation, "clcl") == ["b", "a*"]


def test_one_broker_backs_off_after_every_failure_as_before() -> None:
    rotation = BrokerRotation(["a"])
    assert _walk(rotation, "ffcL") == ["a*", "a*", "a*"]


def test_a_failover_is_a_connection_to_another_broker_than_the_last() -> None:
    rotation = BrokerRotation(["a", "b"])
    assert rotation.connected() is None  # the first connection
    rotation.failed(lasted=True)
    rotation.failed()  # b refused: a round, back to a
    assert rotation.connected() is None  # a again: a reconnect, not a failover
    rotation.failed(lasted=True)
    assert rotation.current == "b"
    assert rotation.connected() == "a"


def test_an_empty_rotation_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BrokerRotation([])


def test_shuffled_is_one_order_per_process_and_list() -> None:
    items = [f"n{i}" for i in range(8)]
    assert broker_order(items, "ordered", "k") == items
    first = broker_order(items, "shuffled", "sink|list")
    assert sorted(first) == items
    assert broker_order(items, "shuffled", "sink|list") == first  # a reload: the same
    # Another process start (seed): another order, for most seeds.
    orders = {tuple(broker_order(items, "shuffled", "sink|list", seed=s)) for s in range(20)}
    assert len(orders) > 10


def _mqtt(**fields: object) -> MqttSinkConfig:
    return MqttSinkConfig.model_validate({"name": "cloud", "type": "mqtt", **fields})


def test_host_is_one_endpoint_as_before() -> None:
    config = _mqtt(host="10.0.0.11", port=8883)
    assert config.endpoints() == [BrokerEndpoint(host="10.0.0.11", port=8883)]


def test_brokers_keep_their_order_and_default_port() -> None:
    config = _mqtt(brokers=[{"host": "a"}, {"host": "b", "port": 1884}, {"host": "::1"}])
    assert [e.address for e in config.endpoints()] == ["a:1883", "b:1884", "[::1]:1883"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "no broker: give host:"),
        ({"host": "a", "brokers": [{"host": "b"}]}, "are both given"),
        ({"brokers": []}, "the list is empty"),
        ({"brokers": [{"host": "a"}], "port": 1884}, "port: belongs to host:"),
    ],
)
def test_exactly_one_way_to_the_broker(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _mqtt(**fields)


def _refused(fields: dict[str, Any]) -> bool:
    """Whether a sink of ``fields`` is refused: by the model, by ``broker_problems`` (what
    ``check`` adds) or when the sink is built."""
    from edge_agent.sinks.mqtt import MqttSink

    try:
        config = MqttSinkConfig.model_validate({"name": "cloud", "type": "mqtt", **fields})
    except ValidationError:
        return True
    if broker_problems(config):
        return True
    try:
        MqttSink(config, PlantIdentity(name="p"))
    except ConfigError:
        return True
    return False


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("10.0.0.11:1883", id="port-written-into-the-host"),
        pytest.param("mqtt://10.0.0.11", id="a-url"),
        pytest.param(" ", id="blank"),
        pytest.param("[::1]", id="bracketed-ipv6"),
    ],
)
def test_a_broker_host_that_cannot_be_a_host_is_refused(host: str) -> None:
    """Each would fail only at connect time, for ever, as "cannot resolve" (the status
    showing ``[10.0.0.11:1883]:1883`` or ``[[::1]]:1883``, a ``:`` taken for an IPv6
    literal): check says it, on its line, for brokers[].host and host: alike."""
    assert _refused({"brokers": [{"host": host}, {"host": "10.0.0.12"}]})
    assert _refused({"host": host})


@pytest.mark.parametrize(
    "host", ["10.0.0.11", "::1", "fe80::1%eth0", "broker-a.plant.local", "broker_a", "node1."]
)
def test_host_names_and_ip_addresses_are_hosts(host: str) -> None:
    assert not _refused({"brokers": [{"host": host}, {"host": "10.0.0.12"}]})
    assert not _refused({"host": host})


def test_the_refusal_says_what_a_host_is_and_where_the_port_goes() -> None:
    with pytest.raises(ValidationError, match=r"not a host name or IP address.*port: separately"):
        _mqtt(host="10.0.0.11:1883")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("broker-a", "broker-a ", id="a-stray-space"),
        pytest.param("broker-a", "BROKER-A.", id="case-and-a-final-dot"),
        pytest.param("::1", "0:0:0:0:0:0:0:1", id="one-ipv6-address-two-spellings"),
    ],
)
def test_a_broker_listed_twice_in_another_spelling_is_refused(first: str, second: str) -> None:
    """Folding case only, the same broker written with a trailing space (or an IPv6
    address in two spellings) passed as two, and a failover to it is none."""
    assert _refused({"brokers": [{"host": first}, {"host": second}, {"host": "broker-b"}]})


def test_a_sink_built_from_code_refuses_a_broker_listed_twice() -> None:
    from edge_agent.config import PlantIdentity
    from edge_agent.sinks.mqtt import MqttSink

    config = _mqtt(brokers=[{"host": "A"}, {"host": "b"}, {"host": "a", "port": 1883}])
    with pytest.raises(ConfigError, match=r"sinks.cloud.brokers.2: a:1883 is listed twice"):
        MqttSink(config, PlantIdentity(name="p"))


def test_tls_per_endpoint_overrides_the_sinks_and_each_context_is_made_once(
    tmp_path: Path,
) -> None:
    config = SparkplugSinkConfig.model_validate(
        {
            "name": "spb",
            "type": "sparkplug",
            "group_id": "g",
            "edge_node_id": "n",
            "tls": {"verify": False},
            "brokers": [
                {"host": "a"},
                {"host": "b", "port": 1883},
                {"host": "c", "port": 1883, "tls": {"verify": True}},
            ],
        }
    )
    a, b, c = brokers_of(config)
    assert isinstance(a.ssl_context, ssl.SSLContext)
    assert a.ssl_context is b.ssl_context  # the sink's tls: one context
    assert a.ssl_context.verify_mode is ssl.CERT_NONE
    assert c.ssl_context is not None
    assert c.ssl_context.verify_mode is ssl.CERT_REQUIRED
    plain = brokers_of(_mqtt(brokers=[{"host": "a"}, {"host": "b", "tls": {"verify": False}}]))
    assert plain[0].ssl_context is None
    assert plain[1].ssl_context is not None


def test_an_unreadable_certificate_of_one_endpoint_is_a_build_error(tmp_path: Path) -> None:
    config = _mqtt(
        brokers=[{"host": "a"}, {"host": "b", "tls": {"ca_file": str(tmp_path / "none.pem")}}]
    )
    with pytest.raises(ConfigError, match=r"sinks.cloud.brokers\[1\].tls: cannot load"):
        BrokerSwitch(config)


def test_the_switch_counts_failovers_and_says_where_it_is() -> None:
    switch = BrokerSwitch(_mqtt(brokers=[{"host": "a"}, {"host": "b"}]))
    assert switch.current.address == "a:1883"
    switch.connected()
    assert not switch.failed(lasted=True)
    assert switch.current.address == "b:1883"
    switch.connected()
    assert switch.failovers == 1


def _batch(ts: int, value: float = 1.0) -> SampleBatch:
    return SampleBatch(
        device="press",
        group="fast",
        timestamp_ns=ts,
        names=("power",),
        values=[value],
        qualities=[Quality.GOOD],
        reasons=[""],
    )


def test_resends_count_the_batches_of_an_unconfirmed_send_sent_again() -> None:
    resends = Resends()
    resends.sending([_batch(1), _batch(2)])
    assert resends.count == 0  # first sends are not resends
    resends.unconfirmed([_batch(1), _batch(2)])
    resends.sending([_batch(1), _batch(2), _batch(3)])
    assert resends.count == 2
    resends.sending([_batch(1)])  # already counted: a later send is a new batch's business
    assert resends.count == 2
    resends.unconfirmed([_batch(3, 2.0)])
    resends.sending([_batch(3, 1.0)])  # another batch of the same time: not a resend
    assert resends.count == 2


def test_status_shows_the_broker_connected_to_or_tried() -> None:
    from edge_agent.service.status_view import render_status

    document = {
        "plant": "p",
        "sinks": {
            "cloud": {"connected": True, "backlog_batches": 0, "broker": "10.0.0.12:1883"},
            "spb": {"connected": False, "backlog_batches": 3, "broker": "10.0.0.13:1883"},
            "influx": {"connected": True, "backlog_batches": 0},
        },
    }
    lines = render_status(document).splitlines()
    assert "  cloud   connected   backlog 0 batches, broker 10.0.0.12:1883" in lines
    assert "  spb     DOWN        backlog 3 batches, trying 10.0.0.13:1883" in lines
    assert "  influx  connected   backlog 0 batches" in lines

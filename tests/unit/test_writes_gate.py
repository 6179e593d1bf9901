"""The gate (WriteService): every refusal with its reason and its audit record, every
outcome, one write at most, the read-back on a clock of our own.

The device is an honest in-memory stand-in (tests/gate_support.py) that records every
request, so "nothing was written" and "written once" are facts, not assumptions.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.writes.model import Outcome, WriteResult
from tests.gate_support import (
    KEY,
    NS,
    T0,
    Gate,
    NotWritable,
    isclose,
    make_gate,
    plant,
    plant_text,
)


@pytest.fixture
def gate() -> Gate:
    return make_gate()


def _refused(gate: Gate, result: WriteResult, reason: str) -> None:
    """Refused with ``reason`` (a part of it), audited, and nothing written."""
    assert result.outcome is Outcome.REFUSED, result
    assert reason in result.reason, result.reason
    assert not result.accepted
    assert gate.device.writes == []
    assert gate.opcua.writes == []
    assert result.sent == "", "a refused command sent nothing and must not read as sent"
    record = gate.audit.records[-1]
    assert record["outcome"] == "refused"
    assert record["sent"] == ""
    assert record["reason"] == result.reason
    assert record["accepted"] is False


# -- applied, and how it is confirmed


async def test_a_write_is_sent_once_read_back_and_audited(gate: Gate) -> None:
    result = await gate.send(id="set-1", value=6.5)
    assert result.outcome is Outcome.APPLIED, result.reason
    assert result.before == 7.0
    assert isclose(result.read_back, 6.5)
    assert gate.device.writes == [("write", 65)]
    assert result.sent == "holding <- 0x0041 (function 6)"
    assert result.written_at_ns
    assert result.confirmed_at_ns
    assert result.finished_at_ns
    record = gate.audit.records[-1]
    assert record["id"] == "set-1"
    assert record["outcome"] == "applied"
    assert record["channel"] == "cli"
    assert record["identity"] == "operator"
    assert record["plant"] == "hall-1"
    assert record["tag"] == "pressure_setpoint"
    assert record["signed"] is False
    assert record["dry_run"] is False
    assert record["time"] == "2026-12-05T06:00:00.000Z"


async def test_the_read_back_polls_every_100_ms_until_the_device_shows_the_value(
    gate: Gate,
) -> None:
    gate.device.lag_reads = 4  # the device shows it on the 4th read after the write
    result = await gate.send(value=6.0)
    assert result.outcome is Outcome.APPLIED
    reads = [r for r in gate.device.requests if r == ("read", "pressure_setpoint")]
    assert len(reads) == 1 + 4  # the value before, then four read-backs
    assert gate.clock.sleeps == [0.1, 0.1, 0.1]
    assert result.confirmed_at_ns - result.written_at_ns == 300_000_000
    assert result.to_json()["timing_ms"] == {"to_write": 0.0, "to_confirm": 300.0, "total": 300.0}


async def test_a_value_the_device_does_not_show_within_the_time_is_a_mismatch(gate: Gate) -> None:
    gate.device.write_mode = "stores_other"
    result = await gate.send(value=6.5)
    assert result.outcome is Outcome.MISMATCH
    assert isclose(result.read_back, 7.5)
    assert result.reason == (
        "read back 7.5 bar, expected 6.5 bar (tolerance 0.01): the device did not show "
        "the value within 2 s"
    )
    assert len(gate.device.writes) == 1, "never a second write"
    # Read right after the write, then every 100 ms for 2 s: 21 reads, nothing after.
    assert len(gate.clock.sleeps) == 20
    assert sum(gate.clock.sleeps) == pytest.approx(2.0)
    assert result.confirmed_at_ns == 0


async def test_a_slow_read_back_stops_at_within_not_after(gate: Gate) -> None:
    gate.device.write_mode = "stores_other"
    gate.device.read_seconds = 0.925
    result = await gate.send(value=6.5)
    assert result.outcome is Outcome.MISMATCH
    # Reads take 0.925 s each: after the second (at 1.95 s) the gate sleeps only what is
    # left of the 2 s, reads a last time, and stops.
    assert gate.clock.sleeps == [0.1, pytest.approx(0.05)]
    assert (gate.clock.now - result.written_at_ns) / NS == pytest.approx(2.0 + 0.925)


async def test_a_device_that_says_no_is_failed(gate: Gate) -> None:
    gate.device.write_mode = "failed"
    result = await gate.send(value=6.5)
    assert result.outcome is Outcome.FAILED
    assert result.accepted
    assert "exception code 3 (illegal data value)" in result.reason
    assert len(gate.device.writes) == 1
    assert gate.device.values["pressure_setpoint"] == 7.0


async def test_no_answer_and_the_old_value_read_back_is_not_applied(gate: Gate) -> None:
    gate.device.write_mode = "silent_lost"
    result = await gate.send(value=6.5)
    assert result.outcome is Outcome.NOT_APPLIED
    assert result.read_back == 7.0
    assert result.before == 7.0
    assert "no answer to the write (no answer within 1 s)" in result.reason
    assert len(gate.device.writes) == 1, "a write without an answer is never sent again"


async def test_no_answer_and_the_new_value_read_back_is_applied(gate: Gate) -> None:
    gate.device.write_mode = "silent_applied"
    result = await gate.send(value=6.5)
    assert result.outcome is Outcome.APPLIED
    assert "no answer to the write" in result.reason
    assert "shows the value" in result.reason
    assert len(gate.device.writes) == 1


async def test_no_answer_and_no_read_back_is_unknown(gate: Gate) -> None:
    gate.device.write_mode = "silent_lost"
    gate.device.bad["pressure_setpoint"] = "timeout"
    gate.device.values["pressure_setpoint"] = 7.0
    result = await gate.send(value=6.5)
    # The value before could not be read either (bad): nothing tells.
    assert result.outcome is Outcome.UNKNOWN
    assert result.before is None
    assert result.read_back is None
    assert "does not tell" in result.reason
    assert "timeout" in result.reason
    assert len(gate.device.writes) == 1


async def test_no_answer_on_a_tag_not_read_back_is_unknown(gate: Gate) -> None:
    gate.device.write_mode = "silent_lost"
    result = await gate.send(tag="pump", value=True)
    assert result.outcome is Outcome.UNKNOWN
    assert "not read back" in result.reason
    assert len(gate.device.writes) == 1


async def test_a_tag_not_read_back_is_applied_when_the_device_confirms(gate: Gate) -> None:
    result = await gate.send(tag="pump", value=1)
    assert result.outcome is Outcome.APPLIED
    assert result.read_back is None
    assert gate.device.writes == [("write", True)], "1 is handed on as true"
    assert result.confirmed_at_ns == 0


async def test_a_dry_run_checks_everything_and_writes_nothing(gate: Gate) -> None:
    result = await gate.send(value=6.5, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN
    assert result.accepted
    assert result.sent == "holding <- 0x0041 (function 6)"
    assert gate.device.writes == []
    assert gate.audit.records[-1]["dry_run"] is True
    # A dry run does not count against the rate.
    for n in range(3):
        assert (await gate.send(id=f"d{n}", value=6.5)).outcome is Outcome.APPLIED


async def test_a_method_is_called_once_with_its_arguments(gate: Gate) -> None:
    gate.opcua.call_output = (1, "ok")
    result = await gate.send(
        device="press-2",
        method="ack",
        args={"code": 7, "who": "operator"},
        channel="mqtt",
        issued_at_ns=T0,
    )
    assert result.outcome is Outcome.APPLIED, result.reason
    assert result.output == (1, "ok")
    assert gate.opcua.writes == [("call", ("ack", {"code": 7, "who": "operator"}))]
    document = result.to_json()
    assert document["method"] == "ack"
    assert "tag" not in document
    assert document["requested"] == {"code": 7, "who": "operator"}
    assert document["output"] == [1, "ok"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"code": 7}, "method ack needs argument who"),
        (
            {"code": 7, "who": "operator", "x": 1},
            "method ack has no argument x (it takes code, who)",
        ),
        ({"code": 100, "who": "operator"}, "100 is above max 99 for argument code of ack"),
        ({"code": 1.5, "who": "operator"}, "1.5 is not on a step of 1 from min 0"),
        ({"code": 1, "who": "boss"}, "boss is not one of the values allowed for argument who"),
        ({"code": "1", "who": "operator"}, "argument code of ack takes a number, not the text '1'"),
    ],
)
async def test_a_method_s_arguments_are_checked(
    gate: Gate, args: dict[str, object], reason: str
) -> None:
    result = await gate.send(device="press-2", method="ack", args=args)
    _refused(gate, result, reason)


async def test_a_failed_or_unanswered_call(gate: Gate) -> None:
    gate.opcua.write_mode = "failed"
    result = await gate.send(device="press-2", method="ack", args={"code": 1, "who": "operator"})
    assert result.outcome is Outcome.FAILED
    assert "BadUserAccessDenied" in result.reason
    gate.opcua.write_mode = "silent_lost"
    result = await gate.send(
        id="again", device="press-2", method="ack", args={"code": 1, "who": "operator"}
    )
    assert result.outcome is Outcome.UNKNOWN
    assert "may or may not have run" in result.reason
    assert len(gate.opcua.writes) == 2


# -- refusals, in the order of the checks


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"id": ""}, "malformed command: id must be"),
        ({"id": "a b"}, "malformed command: id must be"),
        ({"id": "x" * 129}, "malformed command: id must be"),
        ({"value": None}, "malformed command: no value for tag pressure_setpoint"),
        ({"method": "ack", "tag": "pressure_setpoint"}, "malformed command: name exactly one"),
        ({"tag": None}, "malformed command: name exactly one of tag and method"),
        ({"value": [6.5]}, "malformed command: a value is a number"),
        ({"channel": "mqtt"}, "malformed command: an MQTT command needs issued_at"),
    ],
)
async def test_malformed_commands_are_refused(
    gate: Gate, fields: dict[str, object], reason: str
) -> None:
    _refused(gate, await gate.send(**fields), reason)


async def test_a_malformed_id_is_not_echoed(gate: Gate) -> None:
    result = await gate.send(id="a\nb")
    assert result.id == ""
    assert result.to_json()["id"] is None


async def test_signatures(gate: Gate) -> None:
    from tests.gate_support import signed

    text = '{"id": "s1", "tag": "pressure_setpoint", "value": 6.5}'
    good = await gate.send(id="s1", channel="mqtt", issued_at_ns=T0, signed=signed(text))
    assert good.outcome is Outcome.APPLIED
    assert gate.audit.records[-1]["signed"] is True
    upper = signed(text)
    upper = type(upper)(upper.canonical, upper.signature.upper())
    assert (await gate.send(id="s2", channel="mqtt", issued_at_ns=T0, signed=upper)).accepted
    gate.device.requests.clear()
    wrong_key = signed(text, key="another-key-entirely")
    _refused(
        gate,
        await gate.send(id="s3", channel="mqtt", issued_at_ns=T0, signed=wrong_key),
        "bad signature",
    )
    tampered = type(upper)(text.replace("6.5", "7.0").encode(), signed(text).signature)
    _refused(
        gate,
        await gate.send(id="s4", channel="mqtt", issued_at_ns=T0, signed=tampered),
        "bad signature",
    )
    garbage = type(upper)(text.encode(), "zz")
    _refused(
        gate,
        await gate.send(id="s5", channel="mqtt", issued_at_ns=T0, signed=garbage),
        "bad signature",
    )


async def test_an_unsigned_command_where_signatures_are_required() -> None:
    config = plant()
    config = config.model_copy(
        update={"commands": config.commands.model_copy(update={"signatures": "required"})}
    )
    gate = make_gate(config)
    result = await gate.send(channel="mqtt", issued_at_ns=T0)
    _refused(gate, result, "unsigned command: this plant requires signatures")
    # The local socket's commands carry no signature: the socket's permissions guard it.
    assert (await gate.send(id="cli-1")).outcome is Outcome.APPLIED


async def test_a_signed_command_without_a_key() -> None:
    from tests.gate_support import signed

    gate = make_gate(plant(key=""))
    result = await gate.send(channel="mqtt", issued_at_ns=T0, signed=signed("{}"))
    _refused(gate, result, "signed command but no key configured")


async def test_signatures_off_are_not_checked() -> None:
    from tests.gate_support import signed

    config = plant()
    config = config.model_copy(
        update={"commands": config.commands.model_copy(update={"signatures": "off"})}
    )
    gate = make_gate(config)
    result = await gate.send(channel="mqtt", issued_at_ns=T0, signed=signed("{}", key="other"))
    assert result.outcome is Outcome.APPLIED
    assert gate.audit.records[-1]["signed"] is False


@pytest.mark.parametrize(
    ("issued", "expires", "reason"),
    [
        (T0 - 31 * NS, None, "too old: issued 31.0 s ago"),
        (T0 + 31 * NS, None, "issued in the future (clock skew?)"),
        (T0, T0, "expired at 2026-12-05T06:00:00.000Z"),
        (T0 - 5 * NS, T0 - 1, "expired at"),
    ],
)
async def test_commands_outside_their_time_are_refused(
    gate: Gate, issued: int, expires: int | None, reason: str
) -> None:
    result = await gate.send(channel="mqtt", issued_at_ns=issued, expires_at_ns=expires)
    _refused(gate, result, reason)


async def test_a_command_within_its_time_passes(gate: Gate) -> None:
    result = await gate.send(channel="mqtt", issued_at_ns=T0 - 30 * NS, expires_at_ns=T0 + 1)
    assert result.outcome is Outcome.APPLIED


async def test_a_duplicate_id_is_refused_on_any_channel(gate: Gate) -> None:
    assert (await gate.send(id="dup")).outcome is Outcome.APPLIED
    gate.device.requests.clear()
    again = await gate.send(id="dup", channel="mqtt", issued_at_ns=T0)
    _refused(
        gate,
        again,
        "duplicate id (already handled at 2026-12-05T06:00:00.000Z with outcome applied)",
    )


async def test_ids_are_remembered_for_twice_max_age_then_forgotten(gate: Gate) -> None:
    await gate.send(id="old", value=6.0)
    gate.clock.advance(59)
    assert "duplicate id" in (await gate.send(id="old", value=6.0)).reason
    gate.clock.advance(2)
    assert (await gate.send(id="old", value=6.0)).outcome is Outcome.APPLIED


async def test_a_restart_remembers_the_ids_in_the_audit_log(gate: Gate) -> None:
    await gate.send(id="before-restart")
    restarted = make_gate(audit=gate.audit)
    restarted.clock.advance(10)
    result = await restarted.send(id="before-restart", channel="mqtt", issued_at_ns=T0)
    _refused(restarted, result, "duplicate id")
    assert restarted.device.writes == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"device": "nowhere"}, "no device named 'nowhere' in this plant"),
        ({"tag": "nothing"}, "device compressor-1 has no tag 'nothing'"),
        (
            {"tag": "state", "value": "run"},
            "tag state of device compressor-1 is not writable (no write: block)",
        ),
        ({"tag": "pressure"}, "tag pressure of device compressor-1 is not writable"),
        (
            {"tag": "mode", "value": "auto", "channel": "console", "identity": "alice"},
            "tag mode may not be written over console (its channels: cli, sparkplug)",
        ),
        ({"channel": "console", "identity": "bob"}, "console user 'bob' may not write"),
        ({"channel": "sparkplug"}, "may not be written over sparkplug"),
        ({"device": "press-2", "method": "reboot"}, "device press-2 has no method 'reboot'"),
    ],
)
async def test_targets_channels_and_users(
    gate: Gate, fields: dict[str, object], reason: str
) -> None:
    _refused(gate, await gate.send(**fields), reason)


async def test_a_console_user_allowed_to_write(gate: Gate) -> None:
    result = await gate.send(channel="console", identity="alice")
    assert result.outcome is Outcome.APPLIED


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"value": 7.5}, "7.5 bar is above max 7 bar for pressure_setpoint"),
        ({"value": 4.9}, "4.9 bar is below min 5 bar for pressure_setpoint"),
        (
            {"value": 6.55},
            "6.55 bar is not on a step of 0.1 from min 5 for pressure_setpoint: "
            "the nearest allowed values are 6.5 and 6.6",
        ),
        ({"value": "6.5"}, "pressure_setpoint takes a number, not the text '6.5'"),
        ({"value": True}, "pressure_setpoint takes a number, not true"),
        ({"value": float("nan")}, "takes a finite number"),
        (
            {"tag": "mode", "value": "manual"},
            "manual is not one of the values allowed for mode (off/auto)",
        ),
        (
            {"tag": "mode", "value": "fast"},
            "'fast' is not a state of mode (its labels: off, auto, manual)",
        ),
        ({"tag": "mode", "value": 2}, "manual is not one of the values allowed for mode"),
        ({"tag": "mode", "value": 1.0}, "mode takes one of its labels (off, auto, manual), not 1"),
        ({"tag": "pump", "value": 2}, "pump takes true or false (or 1/0), not 2"),
        ({"tag": "label", "value": "C3"}, "C3 is not one of the values allowed for label (A1/B2)"),
        ({"tag": "label", "value": 3}, "label takes a text, not 3"),
        ({"device": "press-2", "tag": "speed", "value": 101}, "101 is above max 100 for speed"),
        ({"device": "press-2", "tag": "speed", "value": "fast"}, "speed takes a number"),
    ],
)
async def test_values_are_checked_against_the_policy(
    gate: Gate, fields: dict[str, object], reason: str
) -> None:
    _refused(gate, await gate.send(**fields), reason)


async def test_steps_are_exact_within_floating_point(gate: Gate) -> None:
    for n, value in enumerate((5.0, 5.1, 6.3, 6.9, 7.0)):
        result = await gate.send(id=f"v{n}", value=value)
        assert result.outcome is not Outcome.REFUSED, result.reason
        gate.clock.advance(61)


#: speed on press-2 limited by a list instead of min/max: only values_match sees it.
OPCUA_ALLOWED = "write: {channels: [cli], allowed: [0, 50, 100]}"


def _allowed_plant() -> PlantConfig:
    text = plant_text().replace("write: {channels: [cli], min: 0, max: 100}", OPCUA_ALLOWED)
    assert OPCUA_ALLOWED in text
    return parse_config(text, env={})


@pytest.mark.parametrize("huge", [10**400, -(10**400), 2**1024], ids=["1e400", "-1e400", "2^1024"])
async def test_a_huge_integer_is_refused_and_audited_not_an_exception(huge: int) -> None:
    """The local socket and the console take any JSON integer: no float holds 10**400
    (math.isfinite raised OverflowError, the command went unaudited and the CLI was
    told "internal error: the write may or may not have been sent")."""
    gate = make_gate(_allowed_plant())
    for fields in (
        {"device": "press-2", "tag": "speed", "value": huge},
        {"value": huge},
        {"tag": "mode", "value": huge},
        {"device": "press-2", "method": "ack", "args": {"code": huge, "who": "operator"}},
    ):
        result = await gate.send(**fields)
        _refused(gate, result, "too large")
        assert len(result.reason) < 200, "the number is not repeated in full"


#: Every kind of value a channel can deliver (JSON: ints of any size, floats, bools,
#: texts), and the floats JSON cannot carry but Python code might hand on.
_VALUES = (
    st.integers()
    | st.integers(min_value=2**1000, max_value=10**400).flatmap(lambda n: st.sampled_from([n, -n]))
    | st.sampled_from([int(sys.float_info.max), int(sys.float_info.max) + 1, 2**64, -(2**63)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([-0.0, 0.0, math.nan, math.inf, -math.inf, 5e-324])
    | st.booleans()
    | st.text(max_size=12)
)
_TARGETS: list[dict[str, Any]] = [
    {},
    {"tag": "mode"},
    {"tag": "pump"},
    {"tag": "label"},
    {"device": "press-2", "tag": "speed"},
]
_CONFIGS: dict[str, PlantConfig] = {}


@settings(max_examples=150, deadline=None)
@given(values=st.lists(_VALUES, min_size=1, max_size=6), allowed=st.booleans())
def test_no_value_makes_the_gate_raise(values: list[Any], allowed: bool) -> None:
    """Whatever the value, submit answers (a result, audited, valid JSON) and never
    raises: an exception would leave the command unaudited and its outcome unknown."""
    if "plain" not in _CONFIGS:
        _CONFIGS["plain"], _CONFIGS["allowed"] = plant(), _allowed_plant()

    async def drive() -> None:
        gate = make_gate(_CONFIGS["allowed" if allowed else "plain"])
        for n, value in enumerate(values):
            for target in _TARGETS:
                result = await gate.send(**target, value=value)
                json.dumps(result.to_json(), allow_nan=False)
                gate.clock.advance(61)  # past the rate limits: the value decides
            args = {"code": value, "who": value}
            result = await gate.send(device="press-2", method="ack", args=args)
            json.dumps(result.to_json(), allow_nan=False)
            assert len(gate.audit.records) == (n + 1) * (len(_TARGETS) + 1)

    asyncio.run(drive())


async def test_an_enum_code_is_handed_on_as_its_label(gate: Gate) -> None:
    result = await gate.send(tag="mode", value=1)
    assert result.outcome is Outcome.APPLIED, result.reason
    assert gate.device.writes == [("write", "auto")]
    assert result.requested == 1


async def test_a_value_the_driver_cannot_represent_is_refused(gate: Gate) -> None:
    gate.device.scales["pressure_setpoint"] = 0.2
    result = await gate.send(value=6.5)
    _refused(gate, result, "6.5 is not a multiple of the tag's scale 0.2")


async def test_rate_limit_per_tag_counts_writes_sent_in_a_sliding_minute(gate: Gate) -> None:
    for n in range(3):
        assert (await gate.send(id=f"r{n}", value=6.0)).outcome is Outcome.APPLIED
        gate.clock.advance(10)
    gate.device.requests.clear()
    result = await gate.send(id="r3", value=6.0)
    _refused(
        gate,
        result,
        "rate limit: 3 writes to pressure_setpoint in the last 60 s (max_per_minute 3); "
        "the next is allowed in 30.0 s",
    )
    gate.clock.advance(30)
    assert (await gate.send(id="r4", value=6.0)).outcome is Outcome.APPLIED


async def test_refusals_do_not_count_against_the_rate(gate: Gate) -> None:
    for n in range(10):
        await gate.send(id=f"x{n}", value=99.0)
    assert (await gate.send(id="ok", value=6.0)).outcome is Outcome.APPLIED


async def test_rate_limit_per_device(gate: Gate) -> None:
    for n in range(3):
        assert (await gate.send(id=f"p{n}", value=6.0)).outcome is Outcome.APPLIED
    for n in range(2):
        assert (await gate.send(id=f"m{n}", tag="mode", value="auto")).outcome is Outcome.APPLIED
    gate.device.requests.clear()
    result = await gate.send(id="pump", tag="pump", value=True)
    _refused(
        gate,
        result,
        "rate limit: 5 writes to device compressor-1 in the last 60 s (writes.max_per_minute 5)",
    )


async def test_failed_writes_count_against_the_rate(gate: Gate) -> None:
    gate.device.write_mode = "failed"
    for n in range(3):
        assert (await gate.send(id=f"f{n}", value=6.0)).outcome is Outcome.FAILED
    assert "rate limit" in (await gate.send(id="f3", value=6.0)).reason


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (DeviceState.OFFLINE, "device offline: writes go only to a device that is online"),
        (DeviceState.CONNECTING, "device connecting"),
        (DeviceState.DEGRADED, "device degraded"),
    ],
)
async def test_a_device_that_is_not_online_is_not_written(
    gate: Gate, state: DeviceState, reason: str
) -> None:
    gate.devices.running["compressor-1"] = (gate.device, state)
    _refused(gate, await gate.send(), reason)


async def test_a_device_not_running_or_without_writes(gate: Gate) -> None:
    del gate.devices.running["press-2"]
    _refused(
        gate,
        await gate.send(device="press-2", tag="speed", value=5),
        "device press-2 is not running",
    )
    gate.devices.running["compressor-1"] = (NotWritable(), DeviceState.ONLINE)
    _refused(gate, await gate.send(id="n2"), "the driver of device compressor-1 cannot write")


async def test_only_when_reads_the_condition_now(gate: Gate) -> None:
    gate.device.values["state"] = "run"
    _refused(
        gate, await gate.send(tag="mode", value="auto"), "only while state is idle/off; it is run"
    )
    gate.device.bad["state"] = "exception code 2"
    _refused(
        gate,
        await gate.send(id="c2", tag="mode", value="auto"),
        "it cannot be read now: exception code 2",
    )
    del gate.device.bad["state"]
    gate.device.values["state"] = "off"
    assert (await gate.send(id="c3", tag="mode", value="auto")).outcome is Outcome.APPLIED


async def test_a_device_that_does_not_answer_before_the_write_is_not_written(gate: Gate) -> None:
    gate.device.read_error = "no answer within 1 s"
    result = await gate.send()
    _refused(gate, result, "device does not answer: timeout: no answer within 1 s")


async def test_the_audit_log_failing_refuses_writes_until_it_works_again(gate: Gate) -> None:
    assert (await gate.send(id="a1", value=6.0)).outcome is Outcome.APPLIED
    gate.audit.broken = "No space left on device"
    with capture_logs() as logs:
        # Written (the append fails only after it): the result still says so, loudly logged.
        after = await gate.send(id="a2", value=6.5)
    assert after.outcome is Outcome.APPLIED
    assert any(e["event"].startswith("audit log not writable") for e in logs)
    gate.device.requests.clear()
    refused = await gate.send(id="a3", value=5.5)
    assert refused.outcome is Outcome.REFUSED
    assert refused.reason.startswith("audit log not writable:")
    assert gate.device.writes == []
    gate.audit.broken = ""
    # The refusal above could not be audited either; the next append works again ...
    await gate.send(id="a4", tag="state", value="run")
    assert (await gate.send(id="a5", value=5.5)).outcome is Outcome.APPLIED


async def test_audit_listeners_get_every_record(gate: Gate) -> None:
    seen: list[object] = []

    def broken(record: object) -> None:
        raise RuntimeError("publisher bug")

    gate.service.add_listener(broken)
    gate.service.add_listener(seen.append)
    await gate.send(id="l1")
    await gate.send(id="l2", value=99.0)
    assert [r["id"] for r in seen] == ["l1", "l2"]  # type: ignore[index]
    gate.service.remove_listener(seen.append)
    await gate.send(id="l3")
    assert len(seen) == 2


async def test_neither_record_nor_log_holds_the_key_or_the_signature(gate: Gate) -> None:
    from tests.gate_support import signed

    text = '{"id": "k1"}'
    form = signed(text)
    with capture_logs() as logs:
        await gate.send(id="k1", channel="mqtt", issued_at_ns=T0, signed=form)
        await gate.send(id="k2", channel="mqtt", issued_at_ns=T0, signed=signed(text, "x" * 20))
    dumped = json.dumps(gate.audit.records) + json.dumps(logs, default=str)
    assert KEY not in dumped
    assert form.signature not in dumped
    lines = [e for e in logs if e["event"] == "write command"]
    assert len(lines) == 2
    assert lines[0]["outcome"] == "applied"
    assert lines[1]["reason"] == "bad signature"
    assert {"id", "channel", "identity", "device", "tag", "outcome", "reason"} <= set(lines[0])


async def test_the_result_document(gate: Gate) -> None:
    result = await gate.send(id="doc", value=6.5)
    document = result.to_json()
    assert list(document) == [
        "id",
        "device",
        "tag",
        "accepted",
        "outcome",
        "reason",
        "requested",
        "before",
        "read_back",
        "sent",
        "output",
        "received_at",
        "written_at",
        "confirmed_at",
        "finished_at",
        "timing_ms",
    ]
    assert document["received_at"] == "2026-12-05T06:00:00.000Z"
    json.dumps(document)  # plain JSON
    refused = (await gate.send(id="doc2", value=99.0)).to_json()
    assert refused["written_at"] is None
    assert refused["timing_ms"] == {
        "to_write": None,
        "to_confirm": None,
        "total": 0.0,
    }


async def test_a_reload_keeps_the_rate_windows_and_the_ids(gate: Gate) -> None:
    from edge_agent.writes.policy import PlantWrites

    for n in range(3):
        await gate.send(id=f"w{n}", value=6.0)
    gate.service.update(PlantWrites.of(plant()))
    assert "rate limit" in (await gate.send(id="w9", value=6.0)).reason
    assert "duplicate id" in (await gate.send(id="w0", value=6.0)).reason


async def test_raising_max_age_on_reload_does_not_let_a_forgotten_id_be_replayed(
    gate: Gate,
) -> None:
    """Ids are kept 2 x max_age. A reload that raises max_age (30 s -> 300 s) makes a
    command issued 61 s ago valid again: its id, forgotten under the old window, must
    be known again, or a captured copy writes the device a second time."""
    from edge_agent.writes.policy import PlantWrites

    first = await gate.send(id="captured", channel="mqtt", issued_at_ns=T0, value=6.0)
    assert first.outcome is Outcome.APPLIED, first.reason
    gate.clock.advance(61)  # past 2 x 30 s: the next command forgets the id
    other = await gate.send(id="other", channel="mqtt", issued_at_ns=gate.clock.now, value=6.5)
    assert other.outcome is Outcome.APPLIED, other.reason
    longer = parse_config(plant_text().replace("max_age: 30s", "max_age: 300s"), env={})
    gate.service.update(PlantWrites.of(longer))
    gate.device.requests.clear()
    replay = await gate.send(id="captured", channel="mqtt", issued_at_ns=T0, value=6.0)
    _refused(gate, replay, "duplicate id")


async def test_a_write_the_driver_could_not_send_is_refused_and_audited(gate: Gate) -> None:
    """Not connected when the write was due (the driver's DriverError: nothing went out):
    answered and audited, not a crash of the channel that carried it."""
    gate.device.write_mode = "not_connected"
    result = await gate.send(id="set-nc", value=6.5)
    assert result.outcome is Outcome.REFUSED
    assert "nothing was sent" in result.reason
    assert gate.device.writes == []
    assert gate.audit.records[-1]["id"] == "set-nc"
    assert gate.audit.records[-1]["outcome"] == "refused"


async def test_a_write_cut_short_by_the_agent_stopping_is_audited_as_unknown(gate: Gate) -> None:
    """The write went out and the agent stopped before its answer: the audit log says
    the outcome is unknown (it may have been applied), then the cancellation goes on."""
    gate.device.write_mode = "hangs"
    command = asyncio.create_task(gate.send(id="set-stop", value=6.5))
    await asyncio.wait_for(gate.device.hanging.wait(), 5)
    command.cancel()
    with pytest.raises(asyncio.CancelledError):
        await command
    assert gate.device.writes == [("write", 65)]
    record = gate.audit.records[-1]
    assert record["id"] == "set-stop"
    assert record["outcome"] == "unknown"
    assert "agent stopped" in str(record["reason"])


def _method_plant(first: str, second: str) -> str:
    """The gate's plant with method ack's arguments renamed (and the second a bool)."""
    code = "{name: code, min: 0, max: 99, step: 1}"
    who = "{name: who, allowed: [operator, shift-lead]}"
    text = plant_text().replace(code, code.replace("code", first))
    return text.replace(who, f"{{name: {second}, allowed: [true, false]}}")


async def test_a_method_argument_named_like_bypass_or_token_count_is_audited() -> None:
    """A key is a secret by its last word (``password``, ``auth_token``), not by a
    fragment anywhere: method arguments named ``token_count`` or ``bypass`` stay in the
    result and the audit record (they vanished when any key holding ``token`` or ending
    in ``pass`` was dropped: the log of a call that set a bypass did not say to what)."""
    gate = make_gate(parse_config(_method_plant("token_count", "bypass"), env={}))
    result = await gate.send(
        device="press-2", method="ack", args={"token_count": 5, "bypass": True}
    )
    assert result.outcome is Outcome.APPLIED
    assert gate.opcua.writes == [("call", ("ack", {"token_count": 5, "bypass": True}))]
    assert result.to_json()["requested"] == {"token_count": 5, "bypass": True}
    assert gate.audit.records[-1]["requested"] == {"token_count": 5, "bypass": True}


async def test_a_gate_whose_audit_directory_cannot_be_made_writes_nothing(
    tmp_path: Path,
) -> None:
    """The gate asks its audit log at start whether it can be written (its directory
    made): when not, every write is refused from the first (the first command was
    written and then had no audit record, the gate refusing only after an append had
    failed)."""
    from edge_agent.config.writes import AuditFiles
    from edge_agent.service.writes_wiring import open_audit_log
    from edge_agent.writes.model import WriteRequest
    from edge_agent.writes.policy import PlantWrites
    from edge_agent.writes.service import WriteService

    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be\n")
    audit = open_audit_log(blocker / "audit", AuditFiles())
    gate = make_gate()
    # The gate as the wiring makes it (WritesWiring.configure), on that log.
    service = WriteService(
        PlantWrites.of(plant()),
        gate.devices,
        audit,
        time_ns=gate.clock.time_ns,
        sleep=gate.clock.sleep,
    )
    service.start()
    request = WriteRequest(
        id="c1",
        channel="cli",
        identity="operator",
        device="compressor-1",
        tag="pressure_setpoint",
        value=6.5,
        received_at_ns=gate.clock.now,
    )
    result = await service.submit(request)
    assert gate.device.writes == [], f"written without an audit record: {result.outcome}"
    assert result.outcome is Outcome.REFUSED

"""The MQTT command payload parser: every form, every refusal, and a fuzz that it never
raises (edge_agent/writes/command_json.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.model import iso_utc_ms
from edge_agent.writes.command_json import (
    MAX_PAYLOAD,
    CommandRefusal,
    parse_command,
    sign_command,
)
from edge_agent.writes.model import Outcome, WriteRequest, WriteResult
from edge_agent.writes.result_json import result_json

PLANT, DEVICE = "plant-a", "compressor-1"
KEY = b"k" * 32
T = "2026-12-05T06:00:00Z"
T_NS = 1_796_450_400_000_000_000


def parse(payload: bytes | dict[str, Any]) -> WriteRequest | CommandRefusal:
    raw = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    return parse_command(raw, plant=PLANT, device=DEVICE, received_at_ns=5, identity="")


def refused(payload: bytes | dict[str, Any]) -> CommandRefusal:
    result = parse(payload)
    assert isinstance(result, CommandRefusal), result
    return result


def base(**changes: Any) -> dict[str, Any]:
    command: dict[str, Any] = {"id": "c-1", "tag": "pressure_setpoint", "value": 6.5}
    command["issued_at"] = T
    command.update(changes)
    return {k: v for k, v in command.items() if v is not ...}


def test_unsigned_tag_command() -> None:
    request = parse(base(expires_at="2026-12-05T07:00:00.5+01:00", dry_run=True))
    assert request == WriteRequest(
        id="c-1",
        channel="mqtt",
        identity="",
        device=DEVICE,
        tag="pressure_setpoint",
        value=6.5,
        issued_at_ns=T_NS,
        expires_at_ns=T_NS + 500_000_000,
        dry_run=True,
        received_at_ns=5,
    )


def test_method_command_with_args() -> None:
    request = parse(base(tag=..., value=..., method="ack", args={"code": 3, "who": "op"}))
    assert isinstance(request, WriteRequest)
    assert (request.method, dict(request.args), request.tag) == (
        "ack",
        {"code": 3, "who": "op"},
        None,
    )


@pytest.mark.parametrize("value", [True, False, 7, -3, 6.55, "run", "", 2**64 - 1])
def test_scalar_values(value: Any) -> None:
    request = parse(base(value=value))
    assert isinstance(request, WriteRequest)
    assert request.value == value
    assert type(request.value) is type(value)


@pytest.mark.parametrize(
    ("when", "ns"),
    [
        ("2026-12-05T06:00:00Z", T_NS),
        ("2026-12-05t06:00:00z", T_NS),
        ("2026-12-05T08:00:00+02:00", T_NS),
        ("2026-12-05T05:30:00-00:30", T_NS),
        ("2026-12-05T06:00:00.123456789Z", T_NS + 123_456_789),
        ("2026-12-05T06:00:00.1Z", T_NS + 100_000_000),
    ],
)
def test_rfc3339_times(when: str, ns: int) -> None:
    request = parse(base(issued_at=when))
    assert isinstance(request, WriteRequest)
    assert request.issued_at_ns == ns


@pytest.mark.parametrize(
    "when",
    [
        "2026-12-05T06:00:00",  # no offset: whose local time?
        "2026-12-05 06:00:00Z",
        "2026-12-05T06:00Z",
        "2026-02-30T06:00:00Z",
        "2026-12-05T24:00:00Z",
        "2026-12-05T06:00:60Z",
        "2026-12-05T06:00:00+24:00",
        "2026-12-05T06:00:00.1234567890Z",
        "２０２６-12-05T06:00:00Z",
        1796450400,
        None,
    ],
)
def test_bad_times_refused(when: Any) -> None:
    assert "issued_at" in refused(base(issued_at=when)).reason


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"id": "a", "id": "b"}', "given twice"),
        (b'{"id": "c", "tag": "t", "value": NaN, "issued_at": "' + T.encode() + b'"}', "NaN"),
        (b'{"id": "c", "tag": "t", "value": -Infinity, "issued_at": "x"}', "Infinity"),
        (b"[" * 100_000, "over the limit"),
        (b"[" * 8_000 + b"]" * 8_000, "nested too deeply"),
    ],
    ids=lambda each: each if isinstance(each, str) else None,
)
def test_malformed_documents(payload: bytes, words: str) -> None:
    assert words in refused(payload).reason


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"id": ...}, "'id' is missing"),
        ({"id": ""}, "'id'"),
        ({"id": "a" * 129}, "'id'"),
        ({"id": "a b"}, "'id'"),
        ({"id": 7}, "'id' must be a string"),
        ({"tag": ...}, "exactly one of 'tag' and 'method'"),
        ({"method": "ack"}, "exactly one of 'tag' and 'method'"),
        ({"tag": ""}, "'tag' must be a name"),
        ({"tag": 5}, "'tag' must be a name"),
        ({"value": ...}, "no 'value'"),
        ({"value": None}, "null"),
        ({"value": [1]}, "not a list or an object"),
        ({"value": {"a": 1}}, "not a list or an object"),
        ({"value": 2**64}, "too large"),
        ({"args": {}}, "'args' goes with 'method'"),
        ({"issued_at": ...}, "'issued_at' is missing"),
        ({"dry_run": "yes"}, "'dry_run' must be true or false"),
        ({"dry_run": 1}, "'dry_run' must be true or false"),
        ({"extra": 1}, 'unknown key(s) "extra"'),
        ({"plant": "other"}, 'names plant "other"'),
        ({"device": "compressor-2"}, 'names device "compressor-2"'),
    ],
)
def test_bad_fields_refused(changes: dict[str, Any], words: str) -> None:
    assert words in refused(base(**changes)).reason


def test_bad_method_args_refused() -> None:
    for args, words in (
        ([1], "'args' must be an object"),
        ({"a": [1]}, "argument 'a'"),
        ({"a": None}, "argument 'a' is null"),
        ({"": 1}, "argument names"),
        ({f"a{i}": i for i in range(65)}, "at most 64"),
    ):
        assert words in refused(base(tag=..., value=..., method="m", args=args)).reason
    assert "'value' goes with 'tag'" in refused(base(tag=..., method="m")).reason


def test_refusal_keeps_id_and_target_when_readable() -> None:
    refusal = refused(base(value=None))
    assert (refusal.id, refusal.target, refusal.method) == ("c-1", "pressure_setpoint", False)
    assert refused(base(id="a b")).id is None
    assert refused(b"garbage") == CommandRefusal(refusal_reason(b"garbage"))


def refusal_reason(payload: bytes) -> str:
    return refused(payload).reason


def inner(**changes: Any) -> dict[str, Any]:
    command = {**base(), "plant": PLANT, "device": DEVICE, **changes}
    return {k: v for k, v in command.items() if v is not ...}


def test_signed_command_keeps_the_exact_text() -> None:
    # Spaces and key order the sender chose: the signature covers these bytes, not ours.
    text = '{ "device":"compressor-1",  "plant":"plant-a","id":"c-1","tag":"t","value":1,' + (
        '"issued_at":"' + T + '"}'
    )
    signature = hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest().upper()
    request = parse({"command": text, "signature": signature})
    assert isinstance(request, WriteRequest)
    assert request.signed is not None
    assert request.signed.canonical == text.encode()
    assert request.signed.signature == signature.lower()
    assert (request.tag, request.value, request.device) == ("t", 1, DEVICE)


def test_sign_command_round_trip() -> None:
    payload = sign_command(inner(), KEY)
    request = parse(payload)
    assert isinstance(request, WriteRequest)
    assert request.signed is not None
    envelope = json.loads(payload)
    assert request.signed.canonical == envelope["command"].encode()
    expected = hmac.new(KEY, envelope["command"].encode(), hashlib.sha256).hexdigest()
    assert request.signed.signature == expected


def test_non_ascii_signed_text_is_signed_as_utf8() -> None:
    text = json.dumps(inner(value="Düse"), ensure_ascii=False)
    request = parse({"command": text, "signature": "0" * 64})
    assert isinstance(request, WriteRequest)
    assert request.signed is not None
    assert request.signed.canonical == text.encode("utf-8")
    assert request.value == "Düse"


@pytest.mark.parametrize(
    ("envelope", "words"),
    [
        ({"command": "{}"}, "both 'command' and 'signature'"),
        ({"signature": "0" * 64}, "both 'command' and 'signature'"),
        ({"command": "{}", "signature": "0" * 64, "id": "x"}, "unknown key(s)"),
        ({"command": {"id": "x"}, "signature": "0" * 64}, "JSON text (a string)"),
        ({"command": "{}", "signature": "xyz"}, "64 hexadecimal digits"),
        ({"command": "{}", "signature": "0" * 63}, "64 hexadecimal digits"),
        ({"command": "\ud800", "signature": "0" * 64}, "lone surrogate"),
        ({"command": "[]", "signature": "0" * 64}, "must be a JSON object"),
        ({"command": json.dumps(base()), "signature": "0" * 64}, "must name its plant"),
        ({"command": json.dumps(inner(device=...)), "signature": "0" * 64}, "its device"),
        ({"command": json.dumps(inner(plant="x")), "signature": "0" * 64}, 'plant "x"'),
        (
            {"command": '{"id": "a", "id": "b"}', "signature": "0" * 64},
            'signed command text: the key "id" is given twice',
        ),
    ],
)
def test_bad_signed_commands(envelope: dict[str, Any], words: str) -> None:
    assert words in refused(json.dumps(envelope).encode()).reason


def test_signed_inner_without_device_is_refused() -> None:
    text = json.dumps({k: v for k, v in inner().items() if k != "device"})
    assert "its device" in refused({"command": text, "signature": "0" * 64}).reason


def test_lone_surrogates_in_fields_are_refused() -> None:
    assert "'tag'" in refused(b'{"id":"c","tag":"\\ud800","value":1,"issued_at":"x"}').reason
    payload = ('{"id":"c","tag":"t","value":"\\udfff","issued_at":"' + T + '"}').encode()
    assert "'value' is not valid text" in refused(payload).reason


def test_payload_at_the_limit_is_read() -> None:
    command = base()
    filler = MAX_PAYLOAD - len(json.dumps({**command, "value": ""}).encode())
    assert isinstance(parse(base(value="x" * filler)), WriteRequest)
    assert "over the limit" in refused(base(value="x" * (filler + 1))).reason


# ---------------------------------------------------------------- the fuzz


def check(payload: bytes) -> None:
    """Whatever the bytes: a request or a refusal with words, and its result document
    is JSON (the sink publishes it)."""
    result = parse(payload)
    if isinstance(result, CommandRefusal):
        assert result.reason
        answer = WriteResult(result.id or "", DEVICE, result.target, Outcome.REFUSED, result.reason)
        json.loads(result_json(answer, method=result.method))
    else:
        assert isinstance(result, WriteRequest)
        assert result.id


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(
    [
        "id",
        "tag",
        "method",
        "value",
        "args",
        "issued_at",
        "expires_at",
        "dry_run",
        "plant",
        "device",
        "command",
        "signature",
        "x",
    ]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(payload: bytes) -> None:
    check(payload)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(KEYS, JSON_VALUES, max_size=9), st.booleans())
def test_fuzz_documents(document: dict[str, Any], signed: bool) -> None:
    if signed:
        text = json.dumps({**document, "plant": PLANT, "device": DEVICE})
        document = {"command": text, "signature": "ab" * 32}
    check(json.dumps(document).encode())


def test_fuzz_mutations_of_valid_payloads() -> None:
    """Seeded byte mutations (flip, drop, insert, duplicate a span) of valid payloads."""
    rng = random.Random(18)
    seeds = [
        json.dumps(base()).encode(),
        json.dumps(base(tag=..., value=..., method="ack", args={"a": 1})).encode(),
        sign_command(inner(expires_at=T, dry_run=True), KEY),
    ]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            match rng.randrange(4):
                case 0:
                    data[at] = rng.randrange(256)
                case 1:
                    del data[at : at + rng.randint(1, 8)]
                case 2:
                    data[at:at] = bytes(
                        rng.choice(b'{}[]",:\\0eE.-+u') for _ in range(rng.randint(1, 4))
                    )
                case _:
                    data[at:at] = data[at : at + rng.randint(1, 40)]
        check(bytes(data))


# ---------------------------------------------------------------- the result document


def test_result_document_fields() -> None:
    result = WriteResult(
        "c-1",
        DEVICE,
        "pressure_setpoint",
        Outcome.APPLIED,
        requested=6.5,
        before=7.0,
        read_back=6.5,
        sent="holding 10 <- 0x028A (function 6)",
        received_at_ns=T_NS,
        written_at_ns=T_NS + 3_100_000,
        confirmed_at_ns=T_NS + 108_300_000,
        finished_at_ns=T_NS + 108_400_000,
    )
    assert result.to_json() == {
        "id": "c-1",
        "device": DEVICE,
        "tag": "pressure_setpoint",
        "accepted": True,
        "outcome": "applied",
        "reason": "",
        "requested": 6.5,
        "before": 7.0,
        "read_back": 6.5,
        "sent": "holding 10 <- 0x028A (function 6)",
        "output": [],
        "received_at": iso_utc_ms(T_NS),
        "written_at": "2026-12-05T06:00:00.003Z",
        "confirmed_at": "2026-12-05T06:00:00.108Z",
        "finished_at": "2026-12-05T06:00:00.108Z",
        "timing_ms": {"to_write": 3.1, "to_confirm": 105.2, "total": 108.4},
    }


def test_refused_result_document_has_nulls() -> None:
    result = WriteResult("", DEVICE, "", Outcome.REFUSED, "not JSON", read_back=float("nan"))
    document = json.loads(result_json(result, method=True))
    assert document["id"] is None
    assert document["method"] is None
    assert document["read_back"] is None
    assert document["accepted"] is False
    assert document["outcome"] == "refused"
    assert document["timing_ms"] == {"to_write": None, "to_confirm": None, "total": None}

"""The console's commissioning requests: bodies checked before anything is sent, and the
read / probe results as the console gets them (pure: no device, no network)."""

from __future__ import annotations

import json

import pytest

from drivers.modbus.answer import Answer, Outcome
from drivers.modbus.results import Asked, ProbeResult, ReadResult, render_read
from edge_agent.console.commission_requests import (
    MAX_BODY_BYTES,
    BadRequest,
    OnceBody,
    ProbeBody,
    ReadBody,
    form_words,
    parse_body,
)
from edge_agent.console.commissioning import CommissioningGate


def _read(**fields: object) -> ReadBody:
    body = {"target": "tcp://127.0.0.1:1502", "address": 0} | fields
    return parse_body(ReadBody, json.dumps(body).encode())


def test_a_read_body_with_defaults() -> None:
    body = _read()
    assert (body.unit, body.table, body.count, body.type, body.timeout) == (
        1,
        "holding",
        None,
        None,
        1.0,
    )


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (b"not json", None, "not JSON"),
        (b"[1, 2]", None, "not a JSON object"),
        (b'{"address": 0}', "target", "target is needed"),
        (b'{"target": "tcp://h", "address": 0, "colour": 1}', "colour", "unknown field"),
        (b'{"target": "tcp://h", "address": "40001"}', "address", "address: input should be"),
        (b'{"target": "tcp://h", "address": true}', "address", "address: input should be"),
        (b'{"target": "tcp://h", "address": 0, "timeout": 30}', "timeout", "less than or equal"),
        (b'{"target": "tcp://h", "address": 0, "timeout": 0}', "timeout", "greater than 0"),
        (b'{"target": "", "address": 0}', "target", "target:"),
    ],
)
def test_a_bad_read_body_names_its_field(raw: bytes, field: str | None, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_body(ReadBody, raw)
    assert caught.value.document()["field"] == field
    assert words in str(caught.value)


def test_a_body_too_large_is_refused_before_parsing() -> None:
    raw = json.dumps({"target": "tcp://h", "address": 0, "pad": "x" * MAX_BODY_BYTES}).encode()
    with pytest.raises(BadRequest, match="bytes: at most"):
        parse_body(ReadBody, raw)


@pytest.mark.parametrize(
    ("expect", "ok"),
    [([220, 240], True), ([240, 220], True), ([1], False), ("220..240", False), ([1, "a"], False)],
)
def test_a_probe_range_is_two_numbers(expect: object, ok: bool) -> None:
    raw = json.dumps({"target": "tcp://h", "address": 0, "expect": expect}).encode()
    if ok:
        body = parse_body(ProbeBody, raw)
        assert (body.low, body.high) == (220, 240)
        return
    with pytest.raises(BadRequest, match=r"expect is a range \[LOW, HIGH\]") as caught:
        parse_body(ProbeBody, raw)
    assert caught.value.field == "expect"


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"scales": [1, 0]}, "scales"), ({"scales": []}, "scales"), ({"top": 0}, "top")],
)
def test_probe_scales_and_top_are_bounded(fields: dict[str, object], field: str) -> None:
    raw = json.dumps({"target": "tcp://h", "address": 0, "expect": [1, 2]} | fields).encode()
    with pytest.raises(BadRequest) as caught:
        parse_body(ProbeBody, raw)
    assert caught.value.field == field


def test_a_once_body_is_a_device_name() -> None:
    assert parse_body(OnceBody, b'{"device": "line-meter"}').device == "line-meter"
    with pytest.raises(BadRequest, match="device is needed"):
        parse_body(OnceBody, b"{}")


def test_the_tools_messages_in_the_forms_words() -> None:
    assert form_words("--byte-order 'XY': use ABCD") == "byte_order 'XY': use ABCD"
    assert (
        form_words("300101 looks like input register 101: --table input --address 100")
        == "300101 looks like input register 101: table input address 100"
    )


def test_the_gate_lets_one_request_in_at_a_time() -> None:
    gate = CommissioningGate()
    assert gate.enter("read by alice") == ""
    assert gate.busy
    assert gate.enter("probe by bob") == "read by alice"
    gate.leave()
    assert gate.enter("probe by bob") == ""


ASKED = Asked("tcp://127.0.0.1:1502 unit 1", 1, False, 1.0, "holding", 0, 2)


def test_a_read_result_as_the_console_gets_it() -> None:
    result = ReadResult.of(ASKED, Answer(Outcome.DATA, data=(0x4148, 0x0000), elapsed=0.0031))
    document = result.document()
    assert document["ok"] is True
    assert document["registers"] == ["0x4148", "0x0000"]
    assert document["elapsed_ms"] == 3.1
    assert document["lines"] == render_read(result)
    by_key = {(d["type"], d["byte_order"]): d for d in document["decodings"]}
    assert by_key["float32", "ABCD"] | {"scale": 1.0} == {
        "type": "float32",
        "byte_order": "ABCD",
        "scale": 1.0,
        "value": 12.5,
        "text": "12.5",
        "good": True,
    }
    assert by_key["uint32", "CDAB"]["value"] == 0x4148
    assert ("uint16", "CDAB") not in by_key  # 16-bit types: ABCD and BADC only
    json.dumps(document, allow_nan=False)


def test_a_nan_is_text_not_a_json_value() -> None:
    result = ReadResult.of(ASKED, Answer(Outcome.DATA, data=(0x7FC0, 0x0000)), "float32")
    (decoding,) = result.document()["decodings"]
    assert decoding["value"] is None
    assert decoding["good"] is False
    assert decoding["text"]


def test_an_exception_reads_as_error_and_hint() -> None:
    result = ReadResult.of(ASKED, Answer(Outcome.EXCEPTION, code=2))
    document = result.document()
    assert document["ok"] is False
    assert document["code"] == 2
    assert document["error"].startswith("unit 1 answered exception 2 (illegal data address)")
    assert document["hint"].startswith("address 0 is the first register")
    assert "hint:" not in document["error"]


def test_a_probe_result_ranks_and_says_how_sure() -> None:
    asked = Asked("tcp://127.0.0.1:1502 unit 1", 1, False, 1.0, "holding", 0, 4)
    answer = Answer(Outcome.DATA, data=(0x4366, 0x8000, 0, 0))  # float32 230.5
    document = ProbeResult.of(asked, answer, 220, 240, (1.0, 0.1), top=3).document()
    assert document["found"] is True
    best = document["candidates"][0]
    assert (best["label"], best["address"], best["text"]) == ("float32 ABCD", 0, "230.5")
    assert document["verdict"].startswith("strong evidence")
    assert document["tag"] == "- {name: value, table: holding, address: 0, type: float32}"
    assert len(document["candidates"]) <= 3
    json.dumps(document, allow_nan=False)

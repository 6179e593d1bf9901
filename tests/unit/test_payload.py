"""The JSON message of one batch: schema, strictness, and the optional fields."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.model import Quality, SampleBatch, Value, iso_utc_ms
from edge_agent.sinks.payload import (
    REASON_NOT_FINITE,
    _header,
    _values_text,
    encode_batch,
    encode_document,
)

T0_NS = 1_795_000_001_234_567_891  # 2026-11-18T11:06:41.234567891Z


def make(
    values: list[Value],
    *,
    names: tuple[str, ...] | None = None,
    qualities: list[Quality] | None = None,
    reasons: list[str] | None = None,
    **kwargs: Any,
) -> SampleBatch:
    n = len(values)
    return SampleBatch(
        device="press-1",
        group="fast",
        timestamp_ns=T0_NS,
        names=names or tuple(f"t{i}" for i in range(n)),
        values=values,
        qualities=qualities or [Quality.GOOD] * n,
        reasons=reasons or [""] * n,
        **kwargs,
    )


def strict_loads(payload: bytes) -> Any:
    """json.loads that refuses NaN/Infinity, as strict consumers (JavaScript, Go) do."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(payload, parse_constant=refuse)


def test_schema_of_a_plain_batch() -> None:
    batch = make(
        [12.5, 7, True, "RUN", None],
        names=("power_kw", "count", "door_open", "mode", "temp"),
        qualities=[Quality.GOOD] * 4 + [Quality.BAD],
        reasons=["", "", "", "", "timeout"],
    )
    payload = encode_batch(batch, "plant-a", "Hall 3")
    assert payload.isascii()
    assert b" " not in payload.replace(b"Hall 3", b"")  # compact separators
    assert strict_loads(payload) == {
        "schema": 1,
        "plant": "plant-a",
        "site": "Hall 3",
        "device": "press-1",
        "group": "fast",
        "ts": "2026-11-18T11:06:41.234Z",
        "ts_ns": T0_NS,
        "values": {
            "power_kw": {"v": 12.5, "q": "good"},
            "count": {"v": 7, "q": "good"},
            "door_open": {"v": True, "q": "good"},
            "mode": {"v": "RUN", "q": "good"},
            "temp": {"v": None, "q": "bad", "r": "timeout"},
        },
    }


def test_uncertain_quality_keeps_value_and_reason() -> None:
    batch = make([3.0], qualities=[Quality.UNCERTAIN], reasons=["stale"])
    values = strict_loads(encode_batch(batch, "p", ""))["values"]
    assert values == {"t0": {"v": 3.0, "q": "uncertain", "r": "stale"}}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_float_becomes_null_and_bad(bad: float) -> None:
    batch = make([1.5, bad, 2.5])
    values = strict_loads(encode_batch(batch, "p", ""))["values"]
    assert values["t0"] == {"v": 1.5, "q": "good"}
    assert values["t1"] == {"v": None, "q": "bad", "r": f"{REASON_NOT_FINITE} ({bad!r})"}
    assert values["t2"] == {"v": 2.5, "q": "good"}


def test_non_finite_float_keeps_the_drivers_reason() -> None:
    batch = make([math.nan], qualities=[Quality.BAD], reasons=["sentinel"])
    values = strict_loads(encode_batch(batch, "p", ""))["values"]
    assert values["t0"] == {"v": None, "q": "bad", "r": "sentinel"}


def test_odd_tag_names_and_strings_are_escaped() -> None:
    names = ('quote"d', "back\\slash", "tab\there", "température °C", "emoji 🙂", "\u2028")
    texts: list[Value] = ['say "hi"', "a\\b", "line\nbreak", "Grüße", "\x00ctl", "\udc80"]
    payload = encode_batch(make(texts, names=names), 'pl"ant', "site/with/slash")
    assert payload.isascii()  # non-ASCII and lone surrogates are \u-escaped
    document = strict_loads(payload)
    assert document["plant"] == 'pl"ant'
    assert document["site"] == "site/with/slash"
    assert list(document["values"]) == list(names)
    assert [entry["v"] for entry in document["values"].values()] == texts


def test_large_integers_are_exact() -> None:
    big = 2**64 - 1  # uint64 counters: exact in the JSON text (JavaScript readers beware)
    assert strict_loads(encode_batch(make([big, -(2**63)]), "p", ""))["values"]["t0"]["v"] == big


def test_historical_flag_only_when_set() -> None:
    assert "historical" not in strict_loads(encode_batch(make([1]), "p", ""))
    document = strict_loads(encode_batch(make([1], historical=True), "p", ""))
    assert document["historical"] is True


def test_attributes_only_when_present() -> None:
    assert "attributes" not in strict_loads(encode_batch(make([1]), "p", ""))
    attributes = {"window_start": "2026-11-26T19:00:00Z", "window_end": "2026-11-26T19:15:00Z"}
    document = strict_loads(encode_batch(make([1], attributes=attributes), "p", ""))
    assert document["attributes"] == attributes


def test_per_value_timestamp_only_where_it_differs() -> None:
    batch = make([1, 2, 3], timestamps_ns=[T0_NS, T0_NS - 5_000_000, T0_NS])
    values = strict_loads(encode_batch(batch, "p", ""))["values"]
    assert values["t0"] == {"v": 1, "q": "good"}
    assert values["t1"] == {"v": 2, "q": "good", "t": T0_NS - 5_000_000}
    assert values["t2"] == {"v": 3, "q": "good"}


def test_per_value_timestamp_with_non_finite_value() -> None:
    batch = make([math.inf], timestamps_ns=[T0_NS + 1])
    values = strict_loads(encode_batch(batch, "p", ""))["values"]
    assert values["t0"] == {"v": None, "q": "bad", "r": "not finite (inf)", "t": T0_NS + 1}


def test_empty_batch() -> None:
    assert strict_loads(encode_batch(make([]), "p", ""))["values"] == {}


@pytest.mark.parametrize(
    ("timestamp_ns", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (999_999, "1970-01-01T00:00:00.000Z"),
        (1_000_000, "1970-01-01T00:00:00.001Z"),
        (T0_NS, "2026-11-18T11:06:41.234Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
    ],
)
def test_iso_timestamp(timestamp_ns: int, text: str) -> None:
    assert iso_utc_ms(timestamp_ns) == text


# The fast path (a values object spliced from ready-made pieces) must write exactly the
# bytes of the general path (a dict per value through the C encoder), for anything a
# driver can put in a batch: odd names, strings with commas and quotes, huge integers,
# NaN, repeated names, reasons on any quality.
_names = st.text(min_size=1, max_size=6)
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
_samples = st.tuples(_values, st.sampled_from(list(Quality)), st.sampled_from(["", "x", 'a,"b"']))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_names, _samples), max_size=12), st.booleans())
def test_fast_path_writes_the_bytes_of_the_general_path(
    entries: list[tuple[str, tuple[Value, Quality, str]]], historical: bool
) -> None:
    batch = make(
        [value for _, (value, _, _) in entries],
        names=tuple(name for name, _ in entries),
        qualities=[quality for _, (_, quality, _) in entries],
        reasons=[reason for _, (_, _, reason) in entries],
        historical=historical,
    )
    expected = encode_document(_header(batch, "plant-a", "Hall 3"), batch)
    assert encode_batch(batch, "plant-a", "Hall 3") == expected


def test_fast_path_is_taken_for_a_plain_batch() -> None:
    """Guards the speed-up itself: a typical batch never reaches the general path."""
    batch = make([1.5, 2, True, "RUN", None], qualities=[Quality.GOOD] * 4 + [Quality.BAD])
    assert _values_text(batch) is not None
    assert _values_text(make([1.5, "a,b"])) is None  # a comma inside a string: general path
    assert _values_text(make([math.nan])) is None

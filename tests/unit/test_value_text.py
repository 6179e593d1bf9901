"""The value list's JSON text, shared by the two wire formats: exact, and never stale."""

from __future__ import annotations

import json
import math
import sys

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from edge_agent.model import Value
from edge_agent.sinks import value_text
from edge_agent.sinks.value_text import ENCODER, RECENT, values_json


def test_text_is_the_strict_compact_json_of_the_list() -> None:
    values: list[Value] = [1.5, 7, True, None, "RUN", 12.300000190734863]
    assert values_json(values) == json.dumps(values, separators=(",", ":"))


def test_non_finite_gives_none_every_time() -> None:
    values: list[Value] = [1.0, math.nan]
    assert values_json(values) is None
    assert values_json(values) is None  # cached as "cannot", not encoded as NaN


def test_second_call_reuses_the_text_of_the_same_list() -> None:
    values: list[Value] = [1.0, 2.0]
    first = values_json(values)
    assert values_json(values) is first  # the very same string object: not encoded again


def test_an_equal_but_different_list_is_encoded_on_its_own() -> None:
    """Identity, not equality, is the key: and an id freed and reused by a new list
    cannot hit, since the cache holds the old list (so its id stays taken)."""
    old: list[Value] = [1.0]
    values_json(old)
    new: list[Value] = [2.0]
    assert values_json(new) == "[2.0]"


def test_cache_is_bounded_and_drops_the_oldest() -> None:
    lists: list[list[Value]] = [[float(i)] for i in range(RECENT + 10)]
    for values in lists:
        values_json(values)
    assert len(value_text._recent) == RECENT
    kept = {id(entry[0]) for entry in value_text._recent.values()}
    assert id(lists[-1]) in kept
    assert id(lists[0]) not in kept


# ------------------------------------------------------------ orjson first, exactly as before

values_strategy = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=-1e-3, max_value=1e-3),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.booleans(),
        st.none(),
        st.text(max_size=8),
        st.sampled_from(["RUN", "idle", "Stage2e", "null", "10.00001", 'say "hi"', "\x7f"]),
    ),
    max_size=40,
)


def reference(values: list[Value]) -> str | None:
    """What the C json encoder alone writes (None: it refuses NaN and ±inf)."""
    try:
        return ENCODER.encode(values)
    except ValueError:
        return None


@settings(max_examples=3000, deadline=None)
@given(values_strategy)
def test_text_is_exactly_the_c_encoders(values: list[Value]) -> None:
    assert values_json(values) == reference(values)


@pytest.mark.parametrize(
    "values",
    [
        [1e16],  # orjson 1e16, Python 1e+16
        [1.5e-7],  # orjson 1.5e-7, Python 1.5e-07
        [1.25e-5],  # orjson 0.0000125, Python 1.25e-05
        ["é"],  # orjson UTF-8, Python \u00e9
        ["\x7f"],  # DEL: orjson raw, Python \u007f
        [None, math.nan],  # orjson null, Python refuses
        [2**64],  # orjson refuses
    ],
    ids=["1e16", "1.5e-7", "1.25e-5", "non-ascii", "del", "nan", "u64+1"],
)
def test_every_difference_between_the_two_encoders_is_caught(values: list[Value]) -> None:
    """Each case is one orjson writes otherwise (or refuses): the guard it trips is needed."""
    try:
        differs = orjson.dumps(values).decode() != reference(values)
    except orjson.JSONEncodeError:
        differs = True
    # orjson 3.8 writes 1e16; later ones (3.13) write 1e+16, as Python does: then the
    # guard only costs the fallback. pyproject allows both.
    assert differs or orjson.dumps(values) == b"[1e+16]"
    assert values_json(values) == reference(values)


def test_every_ascii_string_is_written_alike() -> None:
    """Escapes included: orjson and the C encoder agree on every ASCII character but DEL,
    which is why the text is trusted without looking for a backslash."""
    differing = [c for c in range(128) if orjson.dumps(chr(c)).decode() != ENCODER.encode(chr(c))]
    assert differing == [0x7F]
    every = [chr(c) * 2 for c in range(127)]
    assert values_json(every) == ENCODER.encode(every)


def test_without_orjson_the_c_encoder_writes_every_list_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """orjson is new to the wheel set: without it (or if it fails to load) the sinks
    keep running on the C encoder, which gives the same text."""
    monkeypatch.setattr(value_text, "_dumps", None)
    monkeypatch.setitem(sys.modules, "orjson", None)  # `import orjson` -> ImportError
    first: list[Value] = [1.5, True, None, "RUN"]
    second: list[Value] = [2.5, 1e16, "Ä"]
    with capture_logs() as logs:
        assert values_json(first) == ENCODER.encode(first)
        assert values_json(second) == ENCODER.encode(second)
    assert [e["event"] for e in logs] == ["value_text_without_orjson"]
    assert logs[0]["log_level"] == "warning"
    assert "orjson" in logs[0]["error"]

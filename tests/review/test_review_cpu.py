"""Review of issue 20, CPU per value (c5337f8..46b2644): findings as failing tests.

Each test names one thing the change promises and does not keep; see the review report.
"""

from __future__ import annotations

import copy
import struct
import sys
import warnings
from typing import Any

import pytest

from bench.pairs import render_pairs, summarise
from edge_agent import rounding
from edge_agent.rounding import (
    COMPILED_AFTER,
    COMPILED_DELAY_S,
    shortest_float32,
    shortest_float32_compiled,
    shortest_float32_exact,
    shortest_float32_listwise,
)
from edge_agent.sinks import value_text
from edge_agent.sinks.value_text import ENCODER, values_json

_F32 = struct.Struct("<f")


def from_bits(bits: int) -> float:
    return float(_F32.unpack(struct.pack("<I", bits))[0])


def _past_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module as in an agent a few seconds into a 10,000-tag plant: the next list
    of COMPILED_FROM values or more takes the compiled path (imports on this call)."""
    monkeypatch.setattr(rounding, "_compiled", None)
    monkeypatch.setattr(rounding, "_listed", COMPILED_AFTER)
    monkeypatch.setattr(rounding, "_since", -2 * COMPILED_DELAY_S)


# ------------------------------------------------------------------ 1. rounding.py


@pytest.mark.parametrize("missing", ["numpy", "orjson"])
def test_float32_rounding_keeps_working_when_numpy_or_orjson_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """FINDING (medium): the compiled path has no fallback. If numpy or orjson fails to
    import (a gateway wheel set without it, an ARM build that fails to load), the first
    float32 block after 10,000 values and 3 s raises ImportError out of
    ``shortest_float32``, and since ``_compiled`` stays None every later block retries
    the import and raises again: every float32 tag of the plant stops a few seconds
    after a clean start, although the list path that served those first seconds is
    right there."""
    _past_the_threshold(monkeypatch)
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` -> ImportError
    block = [from_bits(0x42F6E979)] * 8  # 123.456 as a float32
    assert shortest_float32(block) == [123.456] * 8
    assert shortest_float32(block) == [123.456] * 8  # and the next poll too


#: Float32 bit patterns whose Ryu shortest decimal (what numpy and orjson print) does
#: not pack back to the same float32 once parsed as a Python float: the decimal is
#: inside the float32's rounding interval, but its nearest double is the midpoint
#: between two float32s, and float32 rounding of that midpoint (ties to even) goes to
#: the neighbour. Found by running the compiled path over every positive float32.
#: And the neighbour itself (363742206): the reference, reading decimals back the same
#: way, finds 7.038531e-26 for it (7 digits), Ryu does not and writes 7.0385313e-26.
DOUBLE_ROUNDING = [363742205, 363742206]


@pytest.mark.parametrize("bits", DOUBLE_ROUNDING + [b | 0x80000000 for b in DOUBLE_ROUNDING])
def test_the_compiled_path_gives_a_float_that_packs_back_to_the_same_float32(bits: int) -> None:
    """FINDING (high): a wrong value as good. 7.0385307e-26 (bits 0x15AE57FD) comes back
    from the compiled path as 7.038531e-26, which packs to 0x15AE57FE: the next float32,
    not the one the device sent, and not what the list path and the reference give
    (7.0385307e-26), so the payload text changes too once the process is 3 s old. The
    promise "the float with the fewest digits that still packs back to the same 32 bits"
    holds for decimal -> float32 directly (Ryu's interval), not for decimal -> double ->
    float32, which is how every consumer (and ``_F32.pack``) reads it back. Its
    neighbour 7.038531e-26 (0x15AE57FE) keeps its bits but comes back as 7.0385313e-26,
    not the reference's 7.038531e-26: a payload byte change against the list path."""
    value = from_bits(bits)
    expected = shortest_float32_exact(value)
    assert _F32.pack(expected) == _F32.pack(value)  # the reference keeps the bits
    got = shortest_float32_compiled([value] * 4)
    assert [repr(v) for v in got] == [repr(expected)] * 4
    assert all(_F32.pack(v) == _F32.pack(value) for v in got)


def _outcome(function: Any, values: list[Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in production: numpy's RuntimeWarning is no error
        try:
            return [(type(v).__name__, repr(v)) for v in function(values)]
        except Exception as exc:  # noqa: BLE001 - the outcome compared is the exception's type
            return type(exc).__name__


@pytest.mark.parametrize(
    "value",
    [1.00000001, 16777217, 2**31 + 1, 1e39],
    ids=["float64-near-1", "int-2**24+1", "int-2**31+1", "beyond-float32"],
)
def test_a_value_that_is_not_a_float32_gets_the_same_answer_on_both_paths(value: Any) -> None:
    """FINDING (low, latent): the docstring requires exact float32 input, and the
    product's callers (Modbus codec, OPC UA Float) keep that. But outside it the answer
    now depends on how long the process has run: the list path (before the change, and
    still the first 10,000 values / 3 s) gives a non-float32 value back as it came
    (1.00000001 stays 1.00000001, int 16777217 stays int 16777217) and raises
    OverflowError for 1e39; the compiled path rounds to the nearest float32 (1.0,
    16777216.0) and gives 1e39 back with a numpy RuntimeWarning (an error under -W error).
    Either both should refuse such input, or both should give the same value."""
    values = [value] * 4
    assert _outcome(shortest_float32_compiled, values) == _outcome(
        shortest_float32_listwise, values
    )


# ------------------------------------------------------------------ 2. value_text.py


def test_value_text_keeps_working_when_orjson_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FINDING (low): orjson is new to the wheel set. Without it (or if it fails to load)
    ``values_json`` raises ImportError on every batch, so the MQTT JSON and InfluxDB
    sinks stop, where the C encoder it falls back to anyway would give the same bytes."""
    monkeypatch.setattr(value_text, "_dumps", None)
    monkeypatch.setitem(sys.modules, "orjson", None)
    values: list[Any] = [1.5, True, None, "RUN"]
    assert values_json(values) == ENCODER.encode(values)


# ------------------------------------------------------------------ 3. bench/pairs.py


def _pair(n: int, agent_us: float | None, floor_us: float | None) -> dict[str, Any]:
    pair: dict[str, Any] = {
        "pair": n,
        "order": ["agent", "floor"] if n % 2 else ["floor", "agent"],
        "agent": {"cpu_us_per_value": agent_us, "peak_rss_mb": 100.0},
        "floor": {"cpu_us_per_value": floor_us, "foreign_cores": 0.0},
        "helpers": {"foreign_cores": 0.0},
        "delivery": {
            "values_lost": 0 if agent_us else 300_000,
            "sink_unconfirmed": {"mqtt": 0},
            "latency_ms": {"p99": 100.0},
            "jitter_ms": {"p99": 5.0},
        },
        "loadavg": {"agent": [1.0, 1.0, 1.0], "floor": [1.0, 1.0, 1.0]},
        "warnings": [],
    }
    if agent_us and floor_us:  # as run_pairs: a ratio only when both sides have a figure
        pair["agent_floor_ratio"] = round(agent_us / floor_us, 3)
    return pair


def test_summarise_survives_a_pair_whose_agent_delivered_nothing() -> None:
    """FINDING (medium, bench): an agent run that delivered no value in its window has
    ``cpu_us_per_value`` None (cpu_figures divides by the values delivered). summarise
    puts that None into ``statistics.median`` with the floats of the other pairs and
    raises TypeError, after all pairs have run: the whole series (minutes of runs,
    including the good pairs) ends in a traceback with no record and no table. The
    same for a floor run that read nothing."""
    pairs = [_pair(1, 3.0, 2.0), _pair(2, None, 2.0), _pair(3, 3.0, 2.0)]
    summary = summarise(pairs)
    assert summary["delivery"]["values_lost"] == 300_000
    floorless = [_pair(1, 3.0, 2.0), _pair(2, 3.0, None), _pair(3, 3.0, 2.0)]
    summarise(floorless)


def test_a_pair_without_a_ratio_is_named_not_silently_left_out_of_the_median() -> None:
    """FINDING (low, bench): a pair whose ratio could not be taken (one side read or
    delivered nothing) is meant to be left out of the median (``if
    p.get("agent_floor_ratio")``) without a word: five pairs run, the figure of record
    says "median ... (4 pairs)" and no WARNING line says which pair failed or why.
    Today the same pair crashes summarise first (the test above); this one pins that
    the fix of that crash (dropping the Nones) does not make the loss silent."""
    pairs = [_pair(1, 3.0, 2.0), _pair(2, 3.0, 2.0), _pair(3, 3.0, 2.0)]
    del pairs[1]["agent_floor_ratio"]  # e.g. the floor's figure missing: no ratio
    pairs[1]["floor"]["cpu_us_per_value"] = None
    pairs[1]["floor"]["values_read"] = 0
    summary = summarise(copy.deepcopy(pairs))
    record: dict[str, Any] = {
        "scenario": "modbus-scale",
        "params": {"devices": 20, "tags": 500, "interval_s": 1.0, "warmup_s": 5.0, "pairs": 3},
        "window_s": 30.0,
        "pipeline": ["modbus", "mqtt"],
        "pairs": pairs,
        "loadavg_at_start": [1.0, 1.0, 1.0],
        "loadavg_at_end": [1.0, 1.0, 1.0],
        # As run_pairs builds it: the pairs' own warnings, then the summary.
        "warnings": [f"pair {p['pair']}: {w}" for p in pairs for w in p["warnings"]],
        **summary,
    }
    warned = [w for w in record["warnings"] + summary.get("warnings", []) if "pair 2" in w]
    text = render_pairs(record)
    assert warned, text

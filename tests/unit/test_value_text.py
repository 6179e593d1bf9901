"""The value list's JSON text, shared by the two wire formats: exact, and never stale."""

from __future__ import annotations

import json
import math

from edge_agent.model import Value
from edge_agent.sinks import value_text
from edge_agent.sinks.value_text import RECENT, values_json


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

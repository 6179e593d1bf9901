"""Names the InfluxDB sink writes: safe for PromQL and Flux, and what a plant is told."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config.base import NAME_PATTERN
from edge_agent.config.influx import safe_name
from tests.influx_support import influx_config

#: PromQL's metric and label names (less ``:``) and Flux identifiers, written out again.
PROMQL_AND_FLUX = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("line-meter", "line_meter"),
        ("energy_import", "energy_import"),
        ("power.l1", "power_l1"),
        ("3phase", "n_3phase"),
        ("Zähler", "Z_hler"),
        ("#7 meter", "n__7_meter"),
        ("电表", "n___"),
    ],
)
def test_safe_names(name: str, safe: str) -> None:
    assert safe_name(name) == safe


@given(st.one_of(st.from_regex(NAME_PATTERN, fullmatch=True), st.text(min_size=1)))
def test_every_name_becomes_safe_and_never_starts_with_an_underscore(name: str) -> None:
    safe = safe_name(name)
    assert PROMQL_AND_FLUX.fullmatch(safe)
    assert not safe.startswith("_"), "InfluxDB reserves names starting with _"
    assert safe_name(safe) == safe


def test_a_fixed_measurement_must_be_safe_itself() -> None:
    assert influx_config("http://127.0.0.1:9", measurement="edge").fixed_measurement == "edge"
    assert influx_config("http://127.0.0.1:9").fixed_measurement is None
    with pytest.raises(ValueError, match=r"'line-edge' cannot be a measurement.*'line_edge'"):
        influx_config("http://127.0.0.1:9", measurement="line-edge")


def test_a_constant_unit_tag_clashes_with_the_unit_of_each_value() -> None:
    with pytest.raises(ValueError, match="'unit' is the tag that carries each value's unit"):
        influx_config("http://127.0.0.1:9", tags={"unit": "kWh"})
    assert influx_config("http://127.0.0.1:9", tags={"unit": "kWh"}, units="none")

"""The atoms of a read plan kept as columns of integers: the same atoms, a fraction of the memory.

The memory figure is a tracemalloc byte count, which does not depend on the machine's
speed or load: a budget, not a benchmark.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings

from drivers.modbus.atoms import build_atoms
from drivers.modbus.planner import AdaptivePlan
from edge_agent.config import ModbusTag
from tests.unit.test_planner import FakeDevice, _atoms, layouts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_the_compact_atom_table_holds_the_atoms_as_written(
    layout: tuple[list[ModbusTag], FakeDevice, int, int, int],
) -> None:
    tags = layout[0]
    table = build_atoms(tags, 125, 2000)
    expected = _atoms(tags)
    assert len(table) == len(expected)
    assert [(a.table, a.start, a.end, list(a.positions)) for a in table] == expected
    for index, (_, _, _, positions) in enumerate(expected):
        assert table[index].index == index
        assert all(table.atom_of(p) == index for p in positions)
    with pytest.raises(KeyError):
        table.atom_of(len(tags))
    with pytest.raises(IndexError):
        table[len(expected)]


def test_a_plan_holds_under_100_bytes_a_tag() -> None:
    # Atoms as a list of frozen objects with a tuple each, and a dict of position -> atom,
    # took ~250 bytes a tag with the requests (25 MB at 100,000 tags); as columns of
    # machine integers ~80, most of it the requests' positions.
    count = 2000
    tags = [ModbusTag(name=f"t{i}", address=i, type="int16") for i in range(count)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        plan = AdaptivePlan(tags)
        assert len(plan.requests) == 16
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert (after - before) / count < 100

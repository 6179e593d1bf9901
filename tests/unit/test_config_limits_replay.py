"""What a small file may cost the one-pass reader (edge_agent/config/document.py):
no more than it cost the front end it replaced (tests/config_oracle.py), which scanned
the whole file for its limits before building anything.

The reader builds as it reads, so a value built again (a merge of an aliased list,
``<<: *list``, builds the list's items at each merge; an anchor under a skipped key is
built where an alias first needs it) must come from events kept once
(edge_agent/config/replay.py), never from the text parsed again, and a file that
stands for millions of values must be refused after little building. Found by a
review (figures on 2 busy cores, before the fix): a 665-byte merge bomb took 14.6 s
and 401 MB to be refused (old: 0.00 s, 45 MB); 500 merges after 50,000 values 20.9 s
(old 0.4 s); 200 anchors under duplicate keys after 20,000 values 3.5 s (old 0.13 s).

Counts are deterministic (events parsed, bytes traced), never wall time.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from edge_agent.config.document import read_document
from edge_agent.config.reading import YAML_LOADER, LoadLimits
from edge_agent.errors import ConfigError
from tests.config_oracle import old_read_document
from tests.unit.test_config_document import ENV, assert_same


def _events_in(text: str) -> int:
    return sum(1 for _ in yaml.parse(text, Loader=YAML_LOADER))


@pytest.fixture
def parsed_events(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many events every ``yaml.parse`` of the reader yields, in total ([0])."""
    count = [0]
    real = yaml.parse

    def counting(stream: Any, Loader: Any = YAML_LOADER) -> Iterator[Any]:
        for event in real(stream, Loader=Loader):
            count[0] += 1
            yield event

    monkeypatch.setattr(yaml, "parse", counting)
    return count


def _merge_bomb(copies: int, levels: int) -> str:
    """Each list merges the one before it ``copies`` times: 9 copies, 7 levels is 665
    bytes, and stands for more than 2,000,000 values at its last line."""
    text = "l0: &l0 [{a: 1}]\n"
    for level in range(1, levels):
        items = ", ".join([f"{{<<: *l{level - 1}}}"] * copies)
        text += f"l{level}: &l{level} [{items}]\n"
    return text


def test_a_merge_bomb_is_refused_before_it_is_built(parsed_events: list[int]) -> None:
    """The old front end scanned the whole file before building anything, so a file
    over the value limit was refused after one parse. The reader builds each list as
    its events come, and a merge item is built again for every merge: without a bound
    the builder did ~(copies ** levels) merges, each a new parse of the file, before
    the scan reached the line over the limit. Here with a smaller limit, counted."""
    text = _merge_bomb(copies=4, levels=7)
    limits = LoadLimits(max_values=20_000)
    with pytest.raises(ConfigError) as old:
        old_read_document(text, "plant.yaml", {}, limits)
    once = _events_in(text)
    parsed_events[0] = 0
    with pytest.raises(ConfigError) as new:
        read_document(text, "plant.yaml", {}, limits)
    assert new.value.problems == old.value.problems
    # The old front end parsed the refused file once (the scan); allow twice.
    assert parsed_events[0] <= 2 * once, (
        f"{parsed_events[0]:,} events parsed to refuse a file of {once} events"
    )


def test_merging_an_aliased_list_parses_the_file_once_not_once_per_merge(
    parsed_events: list[int],
) -> None:
    """``<<: *list`` re-read the list's events from the text at every merge, parsing
    the file from its start up to the anchor: time was (merges x size before it)."""
    pad = "pad: [" + ", ".join(["1"] * 2000) + "]\n"
    text = pad + "l: &l [{a: 1}]\n" + "".join(f"m{i}: {{<<: *l}}\n" for i in range(50))
    once = _events_in(text)
    parsed_events[0] = 0
    document = read_document(text, "plant.yaml", {})
    assert document.data["m49"] == {"a": 1}
    assert parsed_events[0] <= 2 * once, (
        f"{parsed_events[0]:,} events parsed for a file of {once:,} events"
    )


def test_anchors_under_skipped_keys_cost_no_parse_each(parsed_events: list[int]) -> None:
    """A list or mapping under a duplicate key (or a list used as a key) is not built
    where it is written; an alias to it was built from the text parsed again from the
    start, one parse per such anchor: quadratic in the file (and a reload's worker
    thread with it; a stopping agent waits for that thread at exit)."""
    pad = "pad: [" + ", ".join(["1"] * 2000) + "]\n"
    text = pad + "".join(f"k: 1\nk: &x{i} [1]\n" for i in range(50))
    text += "".join(f"u{i}: *x{i}\n" for i in range(50))
    once = _events_in(text)
    parsed_events[0] = 0
    document = read_document(text, "plant.yaml", {})
    assert document.data["u49"] == [1]
    assert parsed_events[0] <= 2 * once, (
        f"{parsed_events[0]:,} events parsed for a file of {once:,} events"
    )


def test_a_plant_under_a_merge_list_holds_no_more_than_a_plain_one() -> None:
    """The items of an inline merge list (``<<: [ {...}, ... ]``) are kept until the
    list ends (they are built last to first). As libyaml events (an event and two
    marks per scalar) a file whose tags sit under one merge list peaked as the node
    tree did (50,000 tags: 213 MB, the same tags without the merge list 38 MB); kept
    compact (edge_agent/config/replay.py) they cost about what the data does. Pinned
    as bytes per tag, the bound of tests/unit/test_config_document.py's own test."""
    body = "".join(f"      t{i}: {{address: {i}, type: float32, unit: kW}}\n" for i in range(1000))
    text = "m:\n  <<:\n    -\n" + body
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        document = read_document(text, "plant.yaml", {})
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert len(document.data["m"]) == 1000
    assert peak / 1000 < 1200, f"{peak / 1000:.0f} bytes per tag"


def test_a_file_under_a_skipped_key_holds_no_more_than_a_plain_one() -> None:
    """A large anchored value that is not built where it is written (under a duplicate
    key) is kept until an alias builds it: compact, as a merge list's items."""
    body = "".join(f"    t{i}: {{address: {i}, type: float32, unit: kW}}\n" for i in range(1000))
    text = "m: 1\nm: &big\n" + body + "n: *big\n"
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        document = read_document(text, "plant.yaml", {})
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert len(document.data["n"]) == 1000
    assert peak / 1000 < 1200, f"{peak / 1000:.0f} bytes per tag"


def test_a_merge_bomb_at_the_default_limits_is_refused_in_little_memory() -> None:
    """9 copies x 7 levels, 665 bytes, stands for more than 2,000,000 values: refused
    at its last line after building no more than the file holds plus a margin (the
    builder's allowance); before the bound, 401 MB of RSS."""
    text = _merge_bomb(copies=9, levels=7)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as caught:
            read_document(text, "plant.yaml", {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.problems == [
        "plant.yaml:7: aliases expand the file to more than 2,000,000 values (the limit)"
    ]
    assert peak < 10 * 1024 * 1024, f"{peak / 1024 / 1024:.1f} MiB traced"


def test_a_file_past_the_allowance_within_the_limits_reads_as_it_did(
    parsed_events: list[int],
) -> None:
    """A file whose merges build more again than the file holds (plus the allowance)
    is measured to its end, then built in a second pass: two parses, not one per
    merge, and the same data, problems and lines as the old front end."""
    text = "pad: [" + ", ".join(["1"] * 500) + "]\n"
    text += "l0: &l0 [{a: 1, b: '${NOPE}', c: off}]\n"
    for level in range(1, 6):
        text += f"l{level}: &l{level} [" + ", ".join([f"{{<<: *l{level - 1}}}"] * 6) + "]\n"
    once = _events_in(text)
    parsed_events[0] = 0
    document = read_document(text, "plant.yaml", ENV)
    assert document.values > 20_000  # past the allowance
    assert parsed_events[0] <= 2 * once, (
        f"{parsed_events[0]:,} events parsed for a file of {once:,} events"
    )
    assert_same(text, ENV)

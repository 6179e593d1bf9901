"""Line protocol: escaping checked by an independent reader written from the specification.

The reader below follows https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/
(special characters and escaping): a backslash escapes the characters special to an
element, ``\\\\`` is one backslash, a backslash before anything else is itself.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.line_protocol import (
    INT64_MAX,
    INT64_MIN,
    _good_line,
    _line,
    batch_lines,
    field_keys,
    format_value,
    line_prefix,
    split_lines,
)

GOOD, UNCERTAIN, BAD = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD


def _read_until(text: str, pos: int, stops: str, escapable: str) -> tuple[str, int]:
    out = []
    while pos < len(text) and text[pos] not in stops:
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text) and text[pos + 1] in escapable + "\\":
            out.append(text[pos + 1])
            pos += 2
            continue
        out.append(ch)
        pos += 1
    return "".join(out), pos


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, object], int]:
    """(measurement, tags, fields, timestamp) of one line; fields keep their type."""
    assert "\n" not in line
    measurement, pos = _read_until(line, 0, ", ", ", ")
    tags: dict[str, str] = {}
    while line[pos] == ",":
        key, pos = _read_until(line, pos + 1, "=", ",= ")
        value, pos = _read_until(line, pos + 1, ", ", ",= ")
        tags[key] = value
    assert line[pos] == " "
    pos += 1
    fields: dict[str, object] = {}
    while True:
        key, pos = _read_until(line, pos, "=", ",= ")
        pos += 1
        if line[pos] == '"':
            out = []
            pos += 1
            while line[pos] != '"':
                if line[pos] == "\\" and line[pos + 1] in '"\\':
                    out.append(line[pos + 1])
                    pos += 2
                else:
                    out.append(line[pos])
                    pos += 1
            fields[key] = "".join(out)
            pos += 1
        else:
            raw, pos = _read_until(line, pos, ", ", "")
            if raw in ("true", "false"):
                fields[key] = raw == "true"
            elif raw.endswith("i"):
                fields[key] = int(raw[:-1])
            else:
                fields[key] = float(raw)
        if line[pos] == " ":
            break
        pos += 1
    return measurement, tags, fields, int(line[pos + 1 :])


def _as_written(text: str) -> str:
    """What survives the trip: a line break becomes the two characters backslash-n."""
    return text.replace("\n", "\\n").replace("\r", "\\r")


def _batch(names: tuple[str, ...], values: list[object], **kw: object) -> SampleBatch:
    n = len(names)
    return SampleBatch(
        device=str(kw.get("device", "dev")),
        group="g",
        timestamp_ns=int(kw.get("ts", 1_795_000_000_123_456_789)),  # type: ignore[call-overload]
        names=names,
        values=values,  # type: ignore[arg-type]
        qualities=list(kw.get("qualities", [GOOD] * n)),  # type: ignore[call-overload]
        reasons=[""] * n,
        timestamps_ns=kw.get("stamps"),  # type: ignore[arg-type]
    )


def _one_line(batch: SampleBatch, measurement: str, tags: dict[str, str]) -> str:
    keys, qkeys = field_keys(batch.names, None)
    (line,) = batch_lines(batch, line_prefix(measurement, tags), keys, qkeys, 1)
    return line


names = st.text(min_size=1, max_size=20)


@given(measurement=names, tag_key=names, tag_value=names, field=names, text=st.text(max_size=30))
def test_any_name_and_string_survives_escaping(
    measurement: str, tag_key: str, tag_value: str, field: str, text: str
) -> None:
    line = _one_line(_batch((field,), [text]), measurement, {tag_key: tag_value})
    got = parse_line(line)
    assert got == (
        _as_written(measurement),
        {_as_written(tag_key): _as_written(tag_value)},
        {_as_written(field): _as_written(text)},
        1_795_000_000_123_456_789,
    )


@given(
    value=st.one_of(
        st.booleans(),
        st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
        st.floats(allow_nan=False, allow_infinity=False),
    )
)
def test_values_keep_type_and_exact_value(value: object) -> None:
    _, _, fields, _ = parse_line(_one_line(_batch(("v",), [value]), "m", {}))
    got = fields["v"]
    assert type(got) is type(value)
    assert got == value


def test_value_formats() -> None:
    assert format_value(True) == "true"
    assert format_value(False) == "false"
    assert format_value(-3) == "-3i"
    assert format_value(1 << 63) == repr(float(1 << 63))  # beyond int64: a float
    assert format_value(2.0) == "2.0"
    assert format_value(1e-300) == "1e-300"
    assert format_value(math.nan) is None
    assert format_value(-math.inf) is None
    assert format_value(None) is None
    assert format_value('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'


def test_trailing_backslash_in_a_tag_value_does_not_eat_the_separator() -> None:
    line = _one_line(_batch(("v",), [1]), "m", {"path": "C:\\", "z": "x"})
    assert parse_line(line)[1] == {"path": "C:\\", "z": "x"}


def test_bad_and_unwritable_values_are_left_out_and_empty_lines_dropped() -> None:
    batch = _batch(
        ("a", "b", "c", "d", "e"),
        [1.5, 2.5, None, math.nan, 7],
        qualities=[GOOD, BAD, UNCERTAIN, GOOD, UNCERTAIN],
    )
    _, _, fields, _ = parse_line(_one_line(batch, "m", {}))
    assert fields == {"a": 1.5, "e": 7}
    all_bad = _batch(("a",), [None], qualities=[BAD])
    keys, qkeys = field_keys(all_bad.names, None)
    assert batch_lines(all_bad, "m ", keys, qkeys, 1) == []


def test_quality_fields_and_empty_tags() -> None:
    batch = _batch(("a", "b"), [1.5, None], qualities=[UNCERTAIN, BAD])
    keys, qkeys = field_keys(batch.names, "_q")
    (line,) = batch_lines(batch, line_prefix("m", {"site": "", "plant": "p"}), keys, qkeys, 1)
    _, tags, fields, _ = parse_line(line)
    assert tags == {"plant": "p"}  # an empty tag value cannot be written
    assert fields == {"a": 1.5, "a_q": 1, "b_q": 2}


def test_per_value_timestamps_and_precision() -> None:
    t = 1_795_000_000_123_456_789
    batch = _batch(("a", "b", "c"), [1.0, 2.0, 3.0], stamps=[t, t + 5_000_000, t])
    keys, qkeys = field_keys(batch.names, None)
    lines = batch_lines(batch, "m ", keys, qkeys, 1_000_000)
    assert [parse_line(line)[2:] for line in lines] == [
        ({"a": 1.0, "c": 3.0}, t // 1_000_000),
        ({"b": 2.0}, (t + 5_000_000) // 1_000_000),
    ]


def test_tags_are_sorted() -> None:
    assert line_prefix("m", {"b": "2", "a": "1"}) == "m,a=1,b=2 "


# The fast path (_good_line: the C JSON encoder's text of the value list, split and keyed)
# must write exactly what the per-value path (_line) writes, or decline; every kind of
# value a driver produces, at the edges: odd strings, 64-bit bounds, NaN, None.
_fast_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT64_MIN - 2, max_value=INT64_MAX + 2),
    st.sampled_from([INT64_MIN, INT64_MAX, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(["run", 'say "hi"', "back\\slash", "a,b", "", "x y=z", "l\nf", "\x01", "é"]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(names, _fast_values), min_size=1, max_size=10, unique_by=lambda e: e[0]),
    st.booleans(),
)
def test_fast_path_writes_what_the_per_value_path_writes(
    entries: list[tuple[str, object]], with_quality: bool
) -> None:
    values = [value for _, value in entries]
    batch = SampleBatch(
        "d", "g", 1, tuple(n for n, _ in entries), values, [GOOD] * len(values), [""] * len(values)
    )
    keys, quality_keys = field_keys(batch.names, "_q" if with_quality else None)
    fast = _good_line(batch, "m ", keys, quality_keys)
    slow = _line(batch, range(len(values)), "m ", keys, quality_keys)
    if fast is not None:
        assert fast == slow


# Values the fast path must take (good, finite, within 64 bits, strings of printable ASCII
# without a comma): the test above may decline them all and still pass, this one may not.
_plain_values = st.one_of(
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MAX, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=",")),
    st.sampled_from(["run", 'say "hi"', "back\\slash", "", "x y=z"]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(names, _plain_values), min_size=1, max_size=10, unique_by=lambda e: e[0]),
    st.booleans(),
)
def test_fast_path_takes_plain_values_and_writes_what_the_per_value_path_writes(
    entries: list[tuple[str, object]], with_quality: bool
) -> None:
    values = [value for _, value in entries]
    batch = SampleBatch(
        "d", "g", 1, tuple(n for n, _ in entries), values, [GOOD] * len(values), [""] * len(values)
    )
    keys, quality_keys = field_keys(batch.names, "_q" if with_quality else None)
    fast = _good_line(batch, "m ", keys, quality_keys)
    assert fast is not None
    assert fast == _line(batch, range(len(values)), "m ", keys, quality_keys)


def test_fast_path_is_taken_for_plain_values() -> None:
    """Guards the speed-up: a batch of ordinary good values never needs the per-value path."""
    batch = SampleBatch(
        "d", "g", 1, ("a", "b", "c", "d"), [1.5, 7, True, "RUN"], [GOOD] * 4, [""] * 4
    )
    keys, _ = field_keys(batch.names, None)
    assert _good_line(batch, "m ", keys, []) == 'm a=1.5,b=7i,c=true,d="RUN"'
    batch.values = [math.nan, *batch.values[1:]]  # a new list: a batch's lists never change
    assert _good_line(batch, "m ", keys, []) is None


# split_lines (one line per unit): each part must hold exactly what the per-value path
# writes for its indexes, whichever path (fast or per value) the batch takes.
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(names, _fast_values, st.sampled_from([GOOD, UNCERTAIN, BAD]), st.integers(0, 2)),
        min_size=1,
        max_size=10,
        unique_by=lambda e: e[0],
    ),
    st.booleans(),
    st.booleans(),
)
def test_split_lines_write_each_part_as_the_per_value_path_does(
    entries: list[tuple[str, object, Quality, int]], with_quality: bool, stamped: bool
) -> None:
    n = len(entries)
    stamps = [7_000 + (i % 2) * 1_000 for i in range(n)] if stamped else None
    batch = SampleBatch(
        "d",
        "g",
        7_000,
        tuple(e[0] for e in entries),
        [e[1] for e in entries],
        [e[2] for e in entries],
        [""] * n,
        timestamps_ns=stamps,
    )
    keys, quality_keys = field_keys(batch.names, "_q" if with_quality else None)
    by_part: dict[int, list[int]] = {}
    for index, entry in enumerate(entries):
        by_part.setdefault(entry[3], []).append(index)
    parts = [(f"m,unit=u{p} ", indexes) for p, indexes in by_part.items()]
    expected = []
    for at in dict.fromkeys(stamps or [7_000]):
        for prefix, indexes in parts:
            own = [i for i in indexes if stamps is None or stamps[i] == at]
            line = _line(batch, own, prefix, keys, quality_keys)
            if line:
                expected.append(f"{line} {at}")
    assert sorted(split_lines(batch, parts, keys, quality_keys, 1)) == sorted(expected)


def test_split_lines_take_the_fast_path_and_keep_qualities_with_their_values() -> None:
    batch = _batch(("p", "e", "q"), [1.5, 2, "a,b"])
    keys, qkeys = field_keys(batch.names, "_q")
    parts = [("m,unit=kW ", [0]), ("m,unit=kWh ", [1]), ("m ", [2])]
    assert split_lines(batch, parts, keys, qkeys, 1_000_000_000) == [
        "m,unit=kW p=1.5,p_q=0i 1795000000",
        "m,unit=kWh e=2i,e_q=0i 1795000000",
        'm q="a,b",q_q=0i 1795000000',  # the comma in the string: per value, same text
    ]

"""The one-pass reader (edge_agent/config/document.py) against the front end it
replaced (tests/config_oracle.py: scan, ``yaml.compose``, a builder over the node tree).

For every input the two must agree on everything the loader uses: the same
ConfigError, or the same data (types, and which values are the same object), the same
problems in the same order, the same reported paths, boolean words and value count,
and the same line for every path: each key and item, a step below each, and what
goes through aliases and merge keys. Inputs: the example plants and templates, the
golden cases, a bench plant, hand-written corners of anchors and merge keys, and
the fuzz test's mutations of them.
"""

from __future__ import annotations

import math
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.checks.common import Loc
from edge_agent.config.document import Document, read_document
from edge_agent.config.reading import LoadLimits
from edge_agent.errors import ConfigError
from tests.config_oracle import OldDocument, old_read_document
from tests.unit.test_config_fuzz import MUTATORS

ROOT = Path(__file__).resolve().parents[2]
PLANTS = [
    *sorted((ROOT / "configs").glob("*.yaml")),
    *sorted((ROOT / "tests" / "golden" / "config").glob("*/plant.yaml")),
]
TEMPLATES = [
    *sorted((ROOT / "configs" / "templates").glob("*.yaml")),
    *sorted((ROOT / "tests" / "golden" / "config").glob("*/templates/*.yaml")),
]
ENV = {"PLC_HOST": "10.0.0.5", "EMPTY": "", "QOS": "1"}

#: Corners of anchors, aliases, merge keys and odd keys, each a whole document.
CORNERS = [
    "a: &x {k: 1}\nb: *x\nc: {<<: *x, j: 2}\n",
    "d: &m\n  name: m1\n  host: ${PLC_HOST}\n  port: ${NOPE}\n"
    "list:\n  - *m\n  - {<<: *m, name: m2}\n",
    "base: &b {a: 1, b: 2}\nmore: &c {c: 3}\nm: {<<: [*b, *c], a: 9}\nn:\n  <<: [*c, *b]\n",
    "m: {<<: [{x: ${A}}, {y: ${B}}], z: 1}\n",
    "m: {<<: [&a {x: 1}, {y: *a}]}\nlater: *a\n",
    "s: &s [{a: 1}, {b: ${UNSET}}]\nm: {<<: *s, c: 3}\nt: *s\n",
    "m: {<<: 1, <<: [2, *q], a: 1}\nq: &q 3\n",
    "q: &q 3\nm: {<<: [2, *q], a: 1}\n",
    "? [&k 1, 2]\n: v\nlater: *k\n",
    "? &k {a: ${UNSET}}\n: v\nlater: *k\nagain: *k\n",
    "x: {a: 1, a: {deep: &d [1]}}\ny: *d\n",
    "x: {~: {a: 1}, a: 2, 1.5: [z], true: t, 1: one}\n",
    "x: {a: 1, ~: {a: {b: 2}}}\n",
    "x: {'<<': quoted, <<: {m: 1}}\n",
    "k: &k key\nm: {*k : 1, key: 2}\n",
    "e: !!merge &e {a: 1}\nm: {? !!merge [1]\n  : {b: 2}}\n",
    "v: [!!int abc, !!float x, !!binary AAAA, !!timestamp soon, !local t, 2024-02-30]\n",
    "v: {!!int abc: 1, ok: 2}\nw: {off: 1, flag: off, yes: no}\n",
    "v: ${QOS}\nw: '${QOS}'\nx: ${EMPTY:-d}\ny: ${NOPE:-7} and ${QOS}\n",
    "a: &a\n- &b {x: 1}\n- *b\nb: [*a, *b]\nc: {<<: *b}\n",
    "m: &m {a: 1}\nn: {<<: [*m, {b: &z {c: 1}}], d: *z}\n",
    "x: &x 1\ny: {*x : a}\nz: [*x, *x]\n",
    "top: [1, [2, [3, {a: [4]}]]]\n",
    "- not a mapping\n",
    "",
    "# nothing\n",
    "---\n",
    "a: 1\n---\nb: 2\n",
    "a: *nope\n",
    "a: &r [*r]\n",
    "a: [1, 2\n",
]


def _corner_texts() -> list[tuple[str, str]]:
    return [(f"corner-{i}", text) for i, text in enumerate(CORNERS)]


def _file_texts() -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(ROOT)), path.read_bytes().decode("utf-8", errors="replace"))
        for path in PLANTS
    ]


def _bench_plant() -> str:
    """A generated plant of 240 tags, with sinks and metrics, as the bench loads."""
    from bench.plant import PlantSpec, agent_document, dump
    from bench.stages import metrics_section

    spec = PlantSpec(2, 120, 1.0)
    ports = {spec.device_name(i): 10_000 + i for i in range(spec.devices)}
    document = agent_document(
        spec,
        ports,
        plant="b",
        state_dir="/tmp/b",
        sinks=[{"name": "mqtt", "type": "mqtt", "host": "127.0.0.1", "topic": "b/{device}"}],
        extra={"metrics": metrics_section(spec)},
    )
    return dump(document)


def _mutated(count: int) -> Iterator[tuple[str, str]]:
    rng = random.Random(20)
    sources = [path.read_bytes() for path in PLANTS] + [c.encode() for c in CORNERS if c]
    for index in range(count):
        data = rng.choice(sources)
        mutator = MUTATORS[index % len(MUTATORS)]
        data = mutator(rng, data)
        text = data.decode("utf-8", errors="replace")
        if len(text) < 200_000:  # the deep-nesting ones are refused alike, and slowly
            yield f"mutated-{index}-{mutator.__name__}", text


def _read(reader: Any, text: str, env: dict[str, str] | None) -> Document | OldDocument | str:
    try:
        return reader(text, "plant.yaml", env, LoadLimits(max_values=200_000))  # type: ignore[no-any-return]
    except ConfigError as exc:
        return "\n".join(exc.problems)


def _same_data(old: Any, new: Any, pairs: dict[int, int], where: Loc = ()) -> None:
    """Equal values of equal types; a list or mapping shared in one is shared alike."""
    assert type(old) is type(new), where
    if isinstance(old, dict | list):
        if id(old) in pairs:
            assert pairs[id(old)] == id(new), f"{where}: shared differently"
            return
        pairs[id(old)] = id(new)
        assert len(old) == len(new), where
        if isinstance(old, dict):
            assert list(old) == list(new), where
            for key in old:
                _same_data(old[key], new[key], pairs, (*where, str(key)))
        else:
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                _same_data(a, b, pairs, (*where, index))
    elif isinstance(old, float) and math.isnan(old):
        assert math.isnan(new), where
    else:
        assert old == new, where


def _paths(data: Any, old: OldDocument) -> set[Loc]:
    """Every path the old map knows, a step below each, and every path of the data."""
    paths: set[Loc] = {()}
    for path in [*old.source.lines, *old.source.origins]:
        paths |= {path, (*path, "zz"), (*path, 99), (*path, 0)}
    pending: list[tuple[Loc, Any]] = [((), data)]
    seen: set[int] = set()
    while pending:
        path, value = pending.pop()
        paths.add(path)
        if id(value) in seen or len(path) > 12:
            continue
        if isinstance(value, dict | list):
            seen.add(id(value))
        if isinstance(value, dict):
            pending += [((*path, k), v) for k, v in value.items() if isinstance(k, str | int)]
        elif isinstance(value, list):
            pending += [((*path, i), v) for i, v in enumerate(value)]
    return paths


def assert_same(text: str, env: dict[str, str] | None) -> None:
    old = _read(old_read_document, text, env)
    new = _read(read_document, text, env)
    if isinstance(old, str) or isinstance(new, str):
        assert old == new
        return
    assert isinstance(old, OldDocument)
    assert isinstance(new, Document)
    assert new.empty == old.empty
    _same_data(old.data, new.data, {})
    assert new.problems == old.problems
    assert new.reported == old.reported
    assert new.bool_words == old.bool_words
    assert new.values == old.values
    for path in _paths(old.data, old):
        assert new.source.recorded(path) == old.source.lines.get(path), path
        assert new.source.line_of(path) == old.source.line_of(path), path
        assert new.source.written_at(path) == old.source.written_at(path), path


@pytest.mark.parametrize(("name", "text"), [*_file_texts(), *_corner_texts()])
def test_a_plant_file_reads_as_it_did(name: str, text: str) -> None:
    assert_same(text, ENV)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_a_template_file_reads_as_it_did(path: Path) -> None:
    assert_same(path.read_text(), None)


def test_the_bench_plant_reads_as_it_did() -> None:
    assert_same(_bench_plant(), ENV)


def test_corners_without_an_environment_read_as_they_did() -> None:
    for _, text in _corner_texts():
        assert_same(text, None)


def test_400_mutated_files_read_as_they_did() -> None:
    for name, text in _mutated(400):
        try:
            assert_same(text, ENV)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}\n{text[:2000]}") from None


def test_reading_a_plant_holds_no_node_tree() -> None:
    """The peak while reading a 1,000-tag plant, per tag, far under the node tree's
    3.7 kB (the old front end: about 4.7 kB per tag at its peak)."""
    from bench.plant import PlantSpec, agent_document, dump

    spec = PlantSpec(2, 500, 1.0)
    ports = {spec.device_name(i): 10_000 + i for i in range(spec.devices)}
    text = dump(agent_document(spec, ports, plant="b", state_dir="/tmp/b", sinks=[]))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        document = read_document(text, "plant.yaml", {})
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert isinstance(document.data, dict)
    assert peak / 1000 < 1200, f"{peak / 1000:.0f} bytes per tag"


# --------------------------------------------------------------------------- generated documents
# Block-style documents (lines differ from key to key, unlike the flow-style corners)
# with anchors, aliases, merge keys and merge lists, odd, duplicate and list keys,
# tags and environment references: what the builder records and builds again
# (edge_agent/config/replay.py). A review ran 15,000 of them (and 8,000 flow-style
# ones) with no difference.

_SCALARS = [
    "1", "x", "yes", "off", "~", "1.5", "${QOS}", "${NOPE}", "${NOPE:-3}", "'q'",
    "!!int abc", "!!str 5", "!foo z", "2024-01-01", "true", "0x10", '"${EMPTY:-on}"',
]  # fmt: skip
_KEYS = ["a", "b", "c", "a", "<<", "<<", "<<", "~", "1", "1.5", "yes", "'a'", "!!int zz", "2"]


class _Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.anchors: list[str] = []
        self.count = 0

    def _alias(self, chance: float) -> str | None:
        if self.anchors and self.rng.random() < chance:
            return "*" + self.rng.choice(self.anchors)
        return None

    def value(self, depth: int, indent: str) -> str:
        """What follows ``key:`` (a space or a new line first)."""
        alias = self._alias(0.25)
        if alias:
            return " " + alias
        roll = self.rng.random()
        anchor = None
        if self.rng.random() < 0.3:
            self.count += 1
            anchor = f"a{self.count}"
        head = f" &{anchor}" if anchor else ""
        if depth > 3 or roll < 0.45:
            text = head + " " + self.rng.choice(_SCALARS)
        elif roll < 0.55:
            items = [self._alias(1.0) or "{x: 1}" for _ in range(self.rng.randint(1, 3))]
            text = head + " [" + ", ".join(items) + "]"
        elif roll < 0.8:
            text = head + "\n" + self.mapping(depth + 1, indent + "  ")
        else:
            text = head + "\n" + self.sequence(depth + 1, indent + "  ")
        if anchor:
            self.anchors.append(anchor)
        return text

    def mapping(self, depth: int, indent: str) -> str:
        lines = []
        for _ in range(self.rng.randint(1, 5)):
            key = self.rng.choice(_KEYS)
            if key == "<<" and self.rng.random() < 0.6:
                if self.anchors and self.rng.random() < 0.5:
                    lines.append(f"{indent}<<: {self._alias(1.0)}")
                else:
                    items = [
                        self._alias(0.7) or "{m: '${NOPE}', a: 2, b: off}"
                        for _ in range(self.rng.randint(1, 3))
                    ]
                    lines.append(f"{indent}<<: [{', '.join(items)}]")
            elif self.anchors and self.rng.random() < 0.05:
                lines.append(f"{indent}? {self._alias(1.0)}\n{indent}:{self.value(depth, indent)}")
            elif self.rng.random() < 0.05:
                lines.append(f"{indent}? [k, 1]\n{indent}:{self.value(depth, indent)}")
            else:
                lines.append(f"{indent}{key}:{self.value(depth, indent)}")
        return "\n".join(lines)

    def sequence(self, depth: int, indent: str) -> str:
        lines = []
        for _ in range(self.rng.randint(1, 4)):
            if self.rng.random() < 0.3:
                lines.append(f"{indent}- " + self.mapping(depth + 1, indent + "  ").lstrip())
            else:
                lines.append(f"{indent}-" + self.value(depth, indent))
        return "\n".join(lines)


def test_generated_block_documents_read_as_they_did() -> None:
    rng = random.Random(12)
    for index in range(300):
        text = _Generator(rng).mapping(0, "") + "\n"
        for env in (ENV, None):
            try:
                assert_same(text, env)
            except AssertionError as exc:
                raise AssertionError(f"document {index}: {exc}\n{text}") from None

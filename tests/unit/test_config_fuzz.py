"""200 mutated plant files through ``check``: never a traceback, never over 2 s or 200 MB.

The mutations (issue 13, "Done when") are drawn from a fixed seed, so a failure names
a case that can be rebuilt: deleted lines, swapped types, random bytes, deep nesting,
alias bombs, and 50 MB files, applied to configs/demo-plant.yaml and to every golden
config case. Most cases run in this process (load, then the summary ``check`` prints
for a valid file); a few run as ``edge-agent check`` in a child process under a memory
ceiling (tests/check_process.py), among them both 50 MB files.

Time is CPU time of the thread doing the work (or of the child), so a busy machine
does not fail the test; memory is the peak RSS (VmHWM: reset before each case in this
process; the child's own, reported as it exits).
"""

from __future__ import annotations

import contextlib
import datetime
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config.loader import LoadLimits, load_config
from edge_agent.config.reading import scan_document
from edge_agent.errors import ConfigError
from edge_agent.summary import render_summary
from tests.check_process import run_check

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "configs" / "demo-plant.yaml",
    *sorted((ROOT / "tests" / "golden" / "config").glob("*/plant.yaml")),
]
SEED = 13
CASES = 200
#: 198 mutated files and the two 50 MB files. Every SUBPROCESS_EVERY-th mutated file
#: runs as a `check` child process instead of in this one.
SUBPROCESS_EVERY = 33
MAX_SECONDS = 2.0
MAX_MB = 200.0

Mutator = Callable[[random.Random, bytes], bytes]

#: Values of another type (or none at all) put where a scalar was.
REPLACEMENTS = [
    "[]",
    "{}",
    "[1, [2, {a: b}]]",
    "{name: x, type: y}",
    "''",
    "~",
    "true",
    "no",
    "-1",
    "1e999",
    ".nan",
    "-.inf",
    "0x7fffffffffffffffffff",
    "9" * 5000,
    "!!binary AAAA",
    "!!binary '###'",
    "!!int many",
    "!!float x",
    "!!timestamp soon",
    "!!set {a, b}",
    "!!python/object:os.system x",
    "!local thing",
    "&anchor 1",
    "*undefined",
    "2024-02-30",
    "12:30:00",
    '"\\u0000\\x1b[2J"',
    '"two\\nlines"',
    "${UNSET_VAR}",
    "${NUMBER:-" + "7" * 5000 + "}",
    "|\n  folded\n  text",
    "'" + "x" * 100_000 + "'",
]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def delete_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    for _ in range(rng.randint(1, 3)):
        if len(lines) > 1:
            del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def duplicate_or_swap_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if rng.random() < 0.5:
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def reindent(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    shift = rng.choice([-4, -2, -1, 1, 2, 3])
    lines[i] = b" " * shift + lines[i] if shift > 0 else lines[i][-shift:]
    return b"\n".join(lines)


_SCALAR = re.compile(rb"(:\s+)([^\s\[\]{},#][^,}\]\n#]*)")

#: Values of another type put in place of a value of the parsed document.
REPLACEMENT_VALUES: list[object] = [
    [],
    {},
    "",
    None,
    True,
    -1,
    0,
    2**64,
    10**40,
    1e308,
    float("nan"),
    float("-inf"),
    "x" * 10_000,
    "two\nlines",
    "\x1b[2J",
    "${UNSET_VAR}",
    "${NUMBER:-" + "7" * 5000 + "}",
    b"\x00\xff",
    datetime.date(2024, 2, 29),
    [1, [2, {"a": "b"}]],
    {"name": "x", "type": "y"},
    {"name": "t", "address": 0},
]


def _parse(data: bytes) -> object:
    """``data`` as plain Python data, or None when it is not small, valid YAML (a
    golden case of a bomb or a syntax error: those get a text mutation instead)."""
    try:
        text = data.decode()
        scan_document(text, "fuzz.yaml", LoadLimits(max_values=50_000))
        return yaml.safe_load(text)
    except (ConfigError, UnicodeDecodeError, yaml.YAMLError, ValueError, AttributeError):
        return None  # the last two: PyYAML's own faults on the tagged_values case


def _slots(data: object) -> list[tuple[dict[object, object] | list[object], object]]:
    """Every (container, key or index) of the document."""
    found: list[tuple[dict[object, object] | list[object], object]] = []
    pending = [data]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            found += [(node, key) for key in node]
            pending += list(node.values())
        elif isinstance(node, list):
            found += [(node, index) for index in range(len(node))]
            pending += node
    return found


def _structural(change: Callable[[random.Random, list[Any]], None]) -> Mutator:
    def mutate(rng: random.Random, data: bytes) -> bytes:
        document = _parse(data)
        slots = _slots(document)
        if not slots:
            return delete_lines(rng, data)
        change(rng, slots)
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()

    mutate.__name__ = change.__name__.lstrip("_")
    return mutate


def _swap_types(rng: random.Random, slots: list[Any]) -> None:
    for _ in range(rng.randint(1, 4)):
        container, key = rng.choice(slots)
        if rng.random() < 0.5:
            container[key] = rng.choice(REPLACEMENT_VALUES)
        else:  # a value from elsewhere in the file: a tag where a name was...
            other, other_key = rng.choice(slots)
            container[key] = other[other_key]


def _delete_keys(rng: random.Random, slots: list[Any]) -> None:
    for container, key in rng.sample(slots, min(len(slots), rng.randint(1, 3))):
        with contextlib.suppress(KeyError, IndexError):
            del container[key]


swap_types = _structural(_swap_types)
delete_keys = _structural(_delete_keys)


def swap_types_as_text(rng: random.Random, data: bytes) -> bytes:
    """Replacements YAML can only say in text: tags, anchors, block scalars."""
    for _ in range(rng.randint(1, 4)):
        matches = list(_SCALAR.finditer(data))
        if not matches:
            break
        match = rng.choice(matches)
        new = rng.choice(REPLACEMENTS).encode()
        data = data[: match.start(2)] + new + data[match.end(2) :]
    return data


def random_bytes(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 20)):
        position = rng.randrange(len(buffer) + 1)
        chunk = rng.randbytes(rng.randint(1, 8))
        if rng.random() < 0.5:
            buffer[position : position + len(chunk)] = chunk
        else:
            buffer[position:position] = chunk
    return bytes(buffer)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def deep_nesting(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice([30, 65, 500, 5_000, 200_000])
    if rng.random() < 0.5:
        nested = b"[" * depth + b"]" * depth
    else:
        nested = b"{a: " * depth + b"1" + b"}" * depth
    matches = list(_SCALAR.finditer(data))
    if depth <= 500 and rng.random() < 0.3:  # block mappings, as plant files are written
        block = b"".join(b"  " * level + b"k:\n" for level in range(1, depth + 1))
        return data + b"\nlabels:\n" + block
    if not matches:
        return data + b"\nx: " + nested + b"\n"
    match = rng.choice(matches)
    return data[: match.start(2)] + nested + data[match.end(2) :]


def alias_bomb(rng: random.Random, data: bytes) -> bytes:
    kind = rng.choice(["laughs", "laughs", "merge", "cycle", "key", "chain"])
    if kind == "laughs":
        width, depth = rng.choice([(9, 9), (2, 25), (2, 64), (50, 5), (1000, 3), (3, 15)])
        bomb = "b0: &b0 [" + ", ".join(["lol"] * width) + "]\n"
        for level in range(1, depth):
            bomb += f"b{level}: &b{level} [" + ", ".join([f"*b{level - 1}"] * width) + "]\n"
    elif kind == "merge":
        bomb = "m0: &m0 {a: 1, b: 2}\n"
        for level in range(1, 30):
            bomb += f"m{level}: &m{level} {{<<: [*m{level - 1}, *m{level - 1}], k{level}: 1}}\n"
            bomb += f"n{level}: &n{level} [*m{level}, *m{level}]\n"
    elif kind == "cycle":
        bomb = rng.choice(["c: &c [*c]\n", "c: &c {x: *c}\n", "c: &c {<<: *c}\n"])
    elif kind == "key":
        bomb = rng.choice(["k: &k [1]\n? *k\n: 1\n", "k: &k {a: 1}\n{*k : 1}: 2\n"])
    else:
        bomb = "x0: &x0 " + "[" * 60 + "]" * 60 + "\n"
        for level in range(1, 6):
            bomb += f"x{level}: &x{level} [*x{level - 1}]\n"
    text = bomb.encode()
    return data + b"\n" + text if rng.random() < 0.5 else text + data


MUTATORS: list[Mutator] = [
    delete_lines,
    delete_keys,
    swap_types,
    swap_types,
    swap_types_as_text,
    random_bytes,
    deep_nesting,
    alias_bomb,
    duplicate_or_swap_lines,
    reindent,
    truncate,
]


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    data: bytes


def mutated_cases() -> list[Case]:
    rng = random.Random(SEED)
    sources = [(path.parent.name, path.read_bytes()) for path in SOURCES]
    cases = []
    for index in range(CASES - 2):
        # Half the cases start from the demo plant: the largest, and a valid one.
        source_name, data = sources[0] if rng.random() < 0.5 else rng.choice(sources)
        steps = [MUTATORS[index % len(MUTATORS)]]
        if rng.random() < 0.3:
            steps.append(rng.choice(MUTATORS))
        for step in steps:
            data = step(rng, data)
        label = "+".join(step.__name__ for step in steps)
        cases.append(Case(f"{index:03d}-{source_name}-{label}", data))
    return cases


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts over at VmRSS


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def check_output_lines(lines: list[str], path: Path) -> None:
    """Every line names the file (and a line number, where there is one), one line each."""
    prefix = re.compile(rf"^{re.escape(str(path))}(:\d+)?: \S")
    for line in lines:
        assert prefix.match(line), line[:300]
        assert "Traceback" not in line


def run_in_process(path: Path) -> tuple[float, float]:
    """Load ``path`` as ``check`` does; return (CPU seconds, peak RSS growth in MB)."""
    _reset_peak_rss()
    before = _rss_mb()
    started = time.thread_time()
    try:
        config = load_config(path, env={})
    except ConfigError as exc:
        problems = exc.problems
        assert problems
        check_output_lines(problems, path)
    else:
        summary = render_summary(config, str(path))
        assert summary.startswith(f"{path}: valid")
    return time.thread_time() - started, _vm_hwm_mb() - before


def test_200_mutated_plant_files(tmp_path: Path) -> None:
    cases = mutated_cases()
    failures: list[str] = []
    measured: list[tuple[float, float, str]] = []
    for index, case in enumerate(cases):
        path = tmp_path / f"{case.name}.yaml"
        path.write_bytes(case.data)
        try:
            if index % SUBPROCESS_EVERY == 0:
                run = run_check(path, tmp_path)
                assert not run.timed_out, run
                assert run.returncode in (0, 2), run
                check_output_lines(run.stderr.splitlines(), path)
                seconds, megabytes = run.cpu_seconds, run.peak_rss_mb
            else:
                seconds, megabytes = run_in_process(path)
        except Exception as exc:  # noqa: BLE001 - every failing case is collected and reported
            failures.append(f"{case.name}: {type(exc).__name__}: {exc}"[:2000])
            continue
        measured.append((seconds, megabytes, case.name))
        path.unlink()
    assert not failures, "\n\n".join(failures)
    slowest = max(measured)
    largest = max(measured, key=lambda m: m[1])
    assert slowest[0] < MAX_SECONDS, slowest
    assert largest[1] < MAX_MB, largest


@pytest.mark.parametrize("kind", ["random", "valid-head"])
def test_a_50_mb_file(tmp_path: Path, kind: str) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "plant.yaml"
    with path.open("wb") as file:
        if kind == "random":
            for _ in range(50):
                file.write(rng.randbytes(1024 * 1024))
        else:  # a real plant followed by 50 MB of tags
            file.write(SOURCES[0].read_bytes())
            tag = b"          - {name: t, table: input, address: 0, type: float32}\n"
            file.write(tag * (50 * 1024 * 1024 // len(tag)))
    run = run_check(path, tmp_path)
    assert run.returncode == 2, run
    assert "Traceback" not in run.stderr
    check_output_lines(run.stderr.splitlines(), path)
    assert run.cpu_seconds < MAX_SECONDS, run
    assert run.peak_rss_mb < MAX_MB, run

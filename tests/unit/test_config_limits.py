"""What no plant file may do to the loader (issue 13, items 6-8): crash it, hang it, balloon it.

Each case names what went wrong before: a traceback (RecursionError, TypeError), a
segmentation fault, or gigabytes of memory. Bombs and deep nesting run as a
``check`` child process under a memory ceiling, so that a regression fails the test
instead of swapping the machine.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from pathlib import Path

import pytest

from edge_agent.config.loader import load_config, parse_config
from edge_agent.errors import ConfigError
from tests.check_process import run_check

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo-plant.yaml"
PLANT_HEAD = "plant:\n  name: line-1\nstate_dir: /nonexistent/state\n"


def problems_of(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "plant.yaml", env={}, **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def billion_laughs(width: int, depth: int) -> str:
    """``width`` ** ``depth`` strings from a few hundred bytes of aliases."""
    text = PLANT_HEAD + "x-0: &a0 [" + ", ".join(['"lol"'] * width) + "]\n"
    for level in range(1, depth):
        text += f"x-{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]\n"
    return text


# --------------------------------------------------------------------------- item 6


def test_500_nested_block_mappings_are_one_error_at_their_line() -> None:
    # Before: RecursionError from the builder.
    text = PLANT_HEAD + "labels:\n"
    text += "".join("  " * level + f"k{level}:\n" for level in range(1, 500))
    problems = problems_of(text)
    assert len(problems) == 1, problems
    # Line 5 opens depth 2 (the top level is 1): depth 65 opens on line 68.
    assert problems[0] == ("plant.yaml:68: lists and mappings nested more than 64 deep (the limit)")


def test_deep_flow_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    # Before: libyaml's composer recursed in C and the process died of SIGSEGV.
    path = tmp_path / "plant.yaml"
    path.write_text(PLANT_HEAD + "labels: " + "[" * 200_000 + "]" * 200_000 + "\n")
    run = run_check(path, tmp_path)
    assert run.returncode == 2, run
    assert run.stderr.splitlines()[0] == (
        f"{path}:4: lists and mappings nested more than 64 deep (the limit)"
    )
    assert run.cpu_seconds < 1.0, run
    assert run.peak_rss_mb < 100, run


def test_nesting_built_up_through_aliases_counts_too() -> None:
    text = PLANT_HEAD + "x-a: &a " + "[" * 40 + "]" * 40 + "\n"
    text += "x-b: &b [" + "[" * 30 + "*a" + "]" * 30 + "]\n"
    problems = problems_of(text)
    assert problems == ["plant.yaml:5: lists and mappings nested more than 64 deep (the limit)"]


@pytest.mark.parametrize(
    "text",
    [
        "devices: &r [*r]\n",
        "devices: &r\n  - name: a\n    more: *r\n",
        "labels: &r {<<: *r}\n",
    ],
    ids=["list", "inside-a-mapping", "merge-key"],
)
def test_an_alias_inside_its_own_anchor_is_an_error(text: str) -> None:
    # Before: RecursionError (the node tree holds a cycle).
    problems = problems_of(PLANT_HEAD + text)
    assert len(problems) == 1, problems
    assert re.fullmatch(
        r"plant\.yaml:\d: alias \*r is used inside the value it names \(&r, line 4\)", problems[0]
    ), problems


def test_a_list_or_mapping_as_a_key_is_reported_at_its_own_line() -> None:
    # Before: TypeError: unhashable type: 'list'.
    text = PLANT_HEAD + "labels:\n  hall: &k [a, b]\n  ? *k\n  : 3\n  {[1]: 2}: 4\n"
    assert [p for p in problems_of(text) if "cannot be a key" in p] == [
        "plant.yaml:6: alias *k stands for a list, which cannot be a key",
        "plant.yaml:8: a mapping cannot be a key",
        "plant.yaml:8: a list cannot be a key",
    ]


def test_an_alias_to_a_plain_value_may_be_a_key() -> None:
    text = PLANT_HEAD + "devices: []\nx-name: &n hall\nlabels: {? *n : 3}\n"
    problems = problems_of(text)
    assert not any("key" in p and "cannot" in p for p in problems), problems


# --------------------------------------------------------------------------- item 7


@pytest.mark.parametrize(
    ("width", "depth"),
    [(9, 9), (2, 20), (2, 40), (1000, 3)],
    ids=["billion-laughs", "20x2", "40x2", "wide"],
)
def test_alias_bombs_are_refused_within_a_second_and_100_mb(
    tmp_path: Path, width: int, depth: int
) -> None:
    # Before: 9x9 grew `check` to 789 MB in 10 s and rising; 20x2 took 9.8 s and 964 MB.
    path = tmp_path / "plant.yaml"
    path.write_text(billion_laughs(width, depth))
    run = run_check(path, tmp_path)
    assert run.returncode == 2, run
    assert "Traceback" not in run.stderr
    assert re.fullmatch(
        rf"{re.escape(str(path))}:\d+: aliases expand the file to more than "
        r"[\d,]+ values \(the limit\)",
        run.stderr.splitlines()[0],
    ), run.stderr
    assert run.cpu_seconds < 1.0, run
    assert run.peak_rss_mb < 100, run


def test_a_file_larger_than_the_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    with path.open("wb") as file:
        file.write(PLANT_HEAD.encode())
        file.truncate(50 * 1024 * 1024)  # sparse: 50 MiB on paper, no disk used
    run = run_check(path, tmp_path)
    assert run.returncode == 2, run
    assert run.stderr.splitlines()[0] == (
        f"{path}: the file is 50.0 MiB, larger than the 32 MiB a plant file may be"
    )
    assert run.cpu_seconds < 1.0, run
    assert run.peak_rss_mb < 100, run


def test_many_plain_values_are_refused_before_the_document_is_built() -> None:
    from edge_agent.config.loader import LoadLimits

    text = PLANT_HEAD + "labels: [" + ", ".join(["1"] * 5000) + "]\n"
    problems = problems_of(text, limits=LoadLimits(max_values=1000))
    assert problems == ["plant.yaml:4: the file holds more than 1,000 values (the limit)"]


def test_the_limits_can_be_raised_for_an_unusual_file() -> None:
    from edge_agent.config.loader import LoadLimits

    text = billion_laughs(2, 12)
    assert problems_of(text, limits=LoadLimits(max_values=1000)) == [
        "plant.yaml:11: aliases expand the file to more than 1,000 values (the limit)"
    ]
    # 2**12 strings are fine under the default limit: only the plant's own faults remain.
    problems = problems_of(text)
    assert len(problems) == 13, problems
    assert all("unknown key 'x-" in p or "devices: required" in p for p in problems)


def test_the_default_limits_admit_a_100000_tag_plant(tmp_path: Path) -> None:
    """Measured on the bench's plant generator at 2,000 tags and scaled by 50."""
    from bench.plant import PlantSpec, agent_document, dump
    from bench.stages import metrics_section
    from edge_agent.config.loader import DEFAULT_LIMITS
    from edge_agent.config.reading import scan_document

    spec = PlantSpec(4, 500, 1.0)
    ports = {spec.device_name(i): 10_000 + i for i in range(spec.devices)}
    document = agent_document(
        spec,
        ports,
        plant="b",
        state_dir=str(tmp_path),
        sinks=[{"name": "mqtt", "type": "mqtt", "host": "127.0.0.1", "topic": "b/{device}"}],
        extra={"metrics": metrics_section(spec)},
    )
    text = dump(document)
    shape = scan_document(text, "plant.yaml", DEFAULT_LIMITS)
    scale = 100_000 / 2_000
    assert len(text.encode()) * scale * 2 < DEFAULT_LIMITS.max_bytes, "room for descriptions"
    assert shape.values * scale * 1.5 < DEFAULT_LIMITS.max_values
    assert shape.depth * 4 < DEFAULT_LIMITS.max_depth


def test_anchors_and_merge_keys_cost_time_in_proportion_to_the_file() -> None:
    # Before: each merge key copied the whole line map (8,000 tags: 11 s; 100,000: hours).
    lines = [PLANT_HEAD.rstrip("\n"), "devices:"]
    for device in range(20):
        lines += [
            f"  - name: d{device}",
            "    driver: modbus",
            f"    connection: {{transport: tcp, host: 127.0.0.1, port: {10_000 + device}}}",
            "    poll_groups:",
            "      - name: g",
            "        interval: 1s",
            "        tags:",
            "          - &t {name: t0, table: holding, address: 0, type: uint16, unit: V}"
            if device == 0
            else "          - {<<: *t, name: t0, address: 0}",
        ]
        lines += [f"          - {{<<: *t, name: t{tag}, address: {tag}}}" for tag in range(1, 500)]
    started = time.thread_time()
    config = parse_config("\n".join(lines) + "\n", env={})
    assert sum(len(g.tags) for d in config.devices for g in d.poll_groups) == 10_000
    assert time.thread_time() - started < 6.0


def test_an_alias_is_built_once_however_often_it_is_used() -> None:
    # A million values, under the limit. Before: `check` took 3.7 s and 312 MB, every
    # alias a copy.
    started = time.thread_time()
    problems = problems_of(billion_laughs(2, 18))
    assert time.thread_time() - started < 1.0
    assert len(problems) == 19, problems  # unknown keys x-0...x-17, devices missing


def test_a_problem_inside_a_repeated_value_is_reported_once_at_its_line() -> None:
    text = PLANT_HEAD + (
        "devices:\n"
        "  - &meter\n"
        "    name: m1\n"
        "    driver: modbus\n"
        "    connection: {transport: tcp, host: '${PLC_HOST}', port: 502}\n"
        "    poll_groups: [{interval: 1s, tags: [{name: p, address: 0, type: flaot32}]}]\n"
        "  - {<<: *meter, name: m2}\n"
        "  - *meter\n"
    )
    problems = problems_of(text)
    assert [p for p in problems if "PLC_HOST" in p] == [
        "plant.yaml:8: devices[0].connection.host: environment variable PLC_HOST is not set "
        "(write ${PLC_HOST:-default} to give a default)"
    ]
    typo = [p.split(": ")[0:2] for p in problems if "flaot32" in p]
    assert typo == [
        ["plant.yaml:9", "devices[0].poll_groups[0].tags[0].type"],
        ["plant.yaml:9", "devices[1].poll_groups[0].tags[0].type"],
        ["plant.yaml:9", "devices[2].poll_groups[0].tags[0].type"],
    ]


# --------------------------------------------------------------------------- item 8


def test_invalid_utf8_is_reported_by_line_and_column(tmp_path: Path) -> None:
    # Before: "'utf-8' codec can't decode byte 0xe9 in position 41".
    path = tmp_path / "plant.yaml"
    path.write_bytes(
        PLANT_HEAD.encode() + "devices: []\nlabels: {hall: 'Münch".encode() + b"\xe9n'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.problems == [
        f"{path}:5: invalid UTF-8 at column 22 (byte 0xe9); save the file as UTF-8"
    ]


# --------------------------------------------------------------------------- threads


def test_loading_from_worker_threads_gives_the_same_results(tmp_path: Path) -> None:
    """SIGHUP reload parses in a worker thread: nothing in the loader may be shared."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs(9, 9))
    paths = [DEMO, bomb] * 4

    def outcome(path: Path) -> str:
        try:
            return repr(load_config(path, env={"EDGE_AGENT_STATE": str(tmp_path)}))
        except ConfigError as exc:
            return "\n".join(exc.problems)

    expected = [outcome(p) for p in paths]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(outcome, paths)) == expected

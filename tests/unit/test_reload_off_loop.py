"""A reload parses the new plant file off the event loop: no file stops collection.

Before, SIGHUP parsed on the loop: a large file (or an alias bomb, now refused by the
loader's limits) held every poll for as long as the parse took.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from pathlib import Path

from edge_agent.config.collector_pause import collector_paused
from edge_agent.config.loader import load_config
from edge_agent.service.reload import load_for_reload


def _large_plant(path: Path, devices: int, tags: int) -> Path:
    lines = ["plant: {name: big}", f"state_dir: {path.parent / 'state'}", "devices:"]
    for d in range(devices):
        lines += [
            f"  - name: meter-{d}",
            "    driver: modbus",
            f"    connection: {{transport: tcp, host: 127.0.0.1, port: {15000 + d}}}",
            "    poll_groups:",
            "      - interval: 1s",
            "        tags:",
        ]
        lines += [
            f"          - {{name: t{t}, address: {2 * t}, type: float32, unit: kW}}"
            for t in range(tags)
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_the_loop_keeps_running_while_a_large_file_parses(tmp_path: Path) -> None:
    plant = _large_plant(tmp_path / "plant.yaml", devices=20, tags=500)
    gaps: list[float] = []
    started = time.monotonic()
    parse = asyncio.create_task(load_for_reload(plant))
    last = time.monotonic()
    while not parse.done():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    config = await parse
    took = time.monotonic() - started
    assert sum(len(g.tags) for d in config.devices for g in d.poll_groups) == 10_000
    assert took > 0.2, f"the parse took {took:.2f} s: too fast to show anything"
    # On the loop, one gap would have been the whole parse.
    assert max(gaps) < took / 2, (max(gaps), took)
    assert len(gaps) > 10


def test_no_garbage_collection_stops_the_world_while_a_large_file_parses(
    tmp_path: Path,
) -> None:
    """The collector walked the growing heap four times per 10,000-tag parse (up to
    0.5 s each on a loaded machine, the loop stopped for each); none of the parse's
    objects is in a cycle, so it is paused while the file is read."""
    plant = _large_plant(tmp_path / "plant.yaml", devices=10, tags=500)
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        load_config(plant)
    finally:
        gc.callbacks.remove(seen)
    # None while it parses; one when it resumes (the first allocation after it takes
    # the new objects in; which generation depends on the counts before the parse).
    assert len(collections) <= 1, collections
    assert gc.isenabled()


def test_the_collector_resumes_after_the_last_of_several_readers() -> None:
    entered = threading.Event()
    release = threading.Event()

    def reader() -> None:
        with collector_paused():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert entered.wait(5)
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the other reader is still reading"
    finally:
        release.set()
        thread.join(5)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()

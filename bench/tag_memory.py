"""What the agent holds per tag: ``python -m bench.tag_memory [--devices 200 --tags 500]``.

Three uses, each in a fresh process:

``python -m bench.tag_memory --devices 200 --tags 500``
    tracemalloc bytes per tag of the scale scenario's plant (bench/plant.py, metrics,
    MQTT and InfluxDB sinks): what the config holds once loaded, what building the
    agent adds (catalog, read plans, sinks, metrics), and the lines that hold the most.
    Deterministic (no devices are contacted), so a change shows as a byte count.

``python -m bench.tag_memory --run PLANT.yaml [--duration 45]``
    One whole ``python -m edge_agent run -c PLANT.yaml``: VmRSS and VmHWM sampled every
    0.5 s, its CPU over the last 20 s of the run, and the pause of every collection of
    Python's garbage collector (gc.callbacks; the longest full ones are the latency
    tail). Point it at a plant whose devices answer: ``--serve``'s. ``--tree DIR`` runs
    the agent of another checkout (``git archive REV | tar -x -C DIR``): interleave runs
    of two trees for a before/after.

``python -m bench.tag_memory --serve DIR [--devices 200 --tags 500]``
    Serves the scale scenario's plant until interrupted (Ctrl-C or SIGTERM): its
    simulators, mosquitto and VictoriaMetrics on free loopback ports, and the agent's
    plant file for them in ``DIR/plant.yaml`` (metrics, outbox, MQTT and InfluxDB, as
    ``bench modbus-scale`` runs it), so that many ``--run`` use the same devices.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench.plant import PlantSpec, agent_document, dump
from bench.stages import metrics_section

MB = 1 << 20

#: Runs inside the agent's process (``--run``): times every collection, then runs the CLI.
_WATCHED_RUN = """
import gc, json, sys, time
pauses = {0: [], 1: [], 2: []}
started = [0.0]
def watch(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        pauses[info["generation"]].append(time.perf_counter() - started[0])
gc.callbacks.append(watch)
from edge_agent.cli import main
try:
    code = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as out:
        json.dump({"pauses": pauses, "frozen": gc.get_freeze_count()}, out)
raise SystemExit(code)
"""


def _plant_file(devices: int, tags: int, directory: Path) -> Path:
    spec = PlantSpec(devices, tags, 1.0)
    ports = {spec.device_name(i): 20_000 + i for i in range(spec.devices)}
    sinks = [
        {"name": "mqtt", "type": "mqtt", "host": "127.0.0.1", "port": 1},
        {"name": "tsdb", "type": "influxdb", "url": "http://127.0.0.1:1", "org": "o"}
        | {"bucket": "b", "token": "t"},
    ]
    document = agent_document(
        spec,
        ports,
        plant="bench",
        state_dir=str(directory / "state"),
        sinks=sinks,
        extra={"metrics": metrics_section(spec)},
    )
    path = directory / "plant.yaml"
    path.write_text(dump(document))
    return path


def _trace(path: Path, top: int) -> None:
    import logging

    from edge_agent.config.loader import load_config
    from edge_agent.service.agent import Agent

    logging.disable(logging.CRITICAL)
    # An agent of the same kinds of parts, built first, imports what the agent imports
    # lazily (drivers, sinks, metrics): the figures below are the plant's, not modules'.
    with tempfile.TemporaryDirectory(prefix="bench-tag-memory-") as tmp:
        Agent(load_config(_plant_file(4, 12, Path(tmp))))
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    config = load_config(path)
    gc.collect()
    tags = sum(len(g.tags) for d in config.devices for g in d.poll_groups)
    loaded = tracemalloc.take_snapshot()
    after_load = tracemalloc.get_traced_memory()[0]
    agent = Agent(config)
    gc.collect()
    built = tracemalloc.get_traced_memory()[0]
    print(
        f"{tags:,} tags: config {(after_load - base) / tags:.0f} B a tag "
        f"({(after_load - base) / MB:.1f} MiB), agent build +{(built - after_load) / tags:.0f} B "
        f"a tag (+{(built - after_load) / MB:.1f} MiB)"
    )
    print("config, by line:")
    for stat in loaded.statistics("lineno")[:top]:
        print(f"  {stat.size / tags:7.1f} B a tag  {stat.traceback[0]}")
    print("agent build, by line:")
    for stat in tracemalloc.take_snapshot().compare_to(loaded, "lineno")[:top]:
        print(f"  {stat.size_diff / tags:+7.1f} B a tag  {stat.traceback[0]}")
    del agent


def _status_kib(pid: int) -> dict[str, int]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {
        line.split(":")[0]: int(line.split()[1])
        for line in lines
        if line.startswith(("VmRSS", "VmHWM"))
    }


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(path: Path, duration: float, tree: Path | None) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory(prefix="bench-tag-memory-") as tmp:
        out = Path(tmp) / "gc.json"
        argv = [sys.executable, "-c", _WATCHED_RUN, str(out), "run", "-c", str(path)]
        argv += ["--duration", f"{duration:g}", "--log-level", "error"]
        env = dict(os.environ, PYTHONPATH=str(tree)) if tree else None
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=env, cwd=tree)
        start = time.monotonic()
        samples: list[tuple[float, int, int, float]] = []
        while child.poll() is None:
            try:
                status = _status_kib(child.pid)
                samples.append(
                    (time.monotonic() - start, status["VmRSS"], status["VmHWM"], _cpu_s(child.pid))
                )
            except (OSError, KeyError, IndexError):  # the child is exiting
                pass
            time.sleep(0.5)
        watched = json.loads(out.read_text())
    end = samples[-1][0]
    window = [s for s in samples if end - 23 <= s[0] <= end - 3]
    cpu = 100 * (window[-1][3] - window[0][3]) / (window[-1][0] - window[0][0])
    full = watched["pauses"]["2"]
    print(
        json.dumps(
            {
                "load_average": load,
                "peak_rss_mb": round(samples[-1][2] / 1024, 1),
                "rss_last_20s_max_mb": round(max(s[1] for s in window) / 1024, 1),
                "rss_end_mb": round(samples[-1][1] / 1024, 1),
                "cpu_percent_last_20s": round(cpu, 1),
                "full_collections": len(full),
                "full_collection_max_ms": round(1000 * max(full, default=0.0), 1),
                "full_collection_total_ms": round(1000 * sum(full), 1),
                "frozen_objects": watched["frozen"],
                "exit_code": child.returncode,
            }
        )
    )


def _serve(devices: int, tags: int, directory: Path) -> None:
    import contextlib
    import signal

    from bench.scale import simulators
    from bench.stages import StageContext, build_pipeline
    from tests.servers import Mosquitto, free_port

    directory.mkdir(parents=True, exist_ok=True)
    spec = PlantSpec(devices, tags, 1.0)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as Ctrl-C does
    with contextlib.ExitStack() as stack:
        _, ports = stack.enter_context(simulators(spec, 0, directory))
        broker = Mosquitto(
            port=free_port(),
            workdir=directory / "mosquitto",
            extra_config="max_queued_messages 0\n",
        )
        broker.start()
        stack.callback(broker.stop)
        pipeline = build_pipeline(None, StageContext(broker.port, directory, stack, spec))
        document = agent_document(
            spec,
            ports,
            plant="bench",
            state_dir=str(directory / "state"),
            sinks=pipeline.sinks,
            extra=pipeline.extra,
        )
        (directory / "plant.yaml").write_text(dump(document))
        print(f"serving {directory / 'plant.yaml'} ({', '.join(pipeline.stages)})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument("--top", type=int, default=12, help="lines shown per stage")
    parser.add_argument("--run", type=Path, help="a plant file: watch a whole agent run")
    parser.add_argument("--duration", type=float, default=45.0, help="seconds (--run)")
    parser.add_argument("--tree", type=Path, help="the checkout whose agent --run runs")
    parser.add_argument("--serve", type=Path, help="a directory: serve the plant's devices")
    parser.add_argument("--trace", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.devices, args.tags, args.serve)
    elif args.trace:
        _trace(args.trace, args.top)
    elif args.run:
        _run(args.run.resolve(), args.duration, args.tree)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-tag-memory-") as tmp:
            path = _plant_file(args.devices, args.tags, Path(tmp))
            argv = [sys.executable, "-m", "bench.tag_memory", "--trace", str(path)]
            subprocess.run([*argv, "--top", str(args.top)], check=True)


if __name__ == "__main__":
    main()

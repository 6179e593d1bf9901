"""One Modbus scale run: simulators, broker, subscriber, the agent, then the floor client.

Order of a run (every process on loopback, every port free, all stopped at the end):

1. the simulator processes (devices spread over ``sim_procs`` processes, so that one
   Python process serving 20 devices does not become the bottleneck);
2. mosquitto with an unlimited queue (a slow subscriber must show as latency, not
   as messages the broker dropped), then the subscriber process;
3. the agent (``python -m edge_agent run``) on the generated plant file; the
   warm-up starts when every device's first batch has arrived;
4. a window of exactly ``n`` poll ticks, starting mid-tick, during which CPU time of
   every process and of the whole machine is sampled at both ends;
5. a grace period for batches in flight, then SIGTERM (the agent drains and exits);
6. the floor client on the same simulators, same read plan, same ticks, measured
   the same way.

The figures come from the OS and from the subscriber, never from the agent's own
account of itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import agent_metrics, profiling
from bench.console_watch import watching
from bench.measure import (
    Sample,
    add_warnings,
    cpu_of,
    helper_shares,
    histogram,
    mid_tick_after,
    sample,
    share,
    sleep_until,
)
from bench.plant import PlantSpec, agent_document, dump, profile_document, published_counts
from bench.procs import BenchError, Child, memory_kib, python
from bench.report import Window, analyse_deliveries, analyse_floor, check_targets
from bench.stages import (
    SPARKPLUG_FILTER,
    SUBSCRIBE_FILTER,
    StageContext,
    build_pipeline,
    counting_sink,
)
from tests.servers import Mosquitto, free_port

_SERVER_LINE = re.compile(r"^\s+(\S+): modbus-tcp 127\.0\.0\.1:(\d+) ")


@dataclass
class ScaleOptions:
    devices: int = 20
    tags: int = 500
    interval_s: float = 1.0
    duration_s: float = 60.0
    warmup_s: float = 10.0
    group_tags: int = 0
    sim_procs: int = 0
    """0: one per CPU, at least 2, at most one per device."""
    floor: bool = True
    floor_warmup_s: float | None = None
    pipeline: Sequence[str] | None = None
    """Stage names (see bench.stages); None: every stage that exists."""
    profiler: str | None = None
    """None, "py-spy" or "pyinstrument"."""
    keep: bool = False
    label: str = ""
    console: str = "off"
    """The web console: "off", "on" (its ring fed, nobody looking) or "watched" (one
    device page open: bench/console_watch.py)."""
    artifacts: Path = field(default_factory=lambda: Path("bench/results"))


@contextlib.contextmanager
def simulators(
    spec: PlantSpec, procs: int, work: Path
) -> Iterator[tuple[list[Child], dict[str, int]]]:
    """Serve the plant from ``procs`` simulator processes; yield them and device -> port."""
    count = procs or max(2, os.cpu_count() or 2)
    count = max(1, min(count, spec.devices))
    children: list[Child] = []
    ports: dict[str, int] = {}
    try:
        for k in range(count):
            devices = list(range(k, spec.devices, count))
            path = work / f"profile-{k}.yaml"
            path.write_text(dump(profile_document(spec, devices, f"bench-{k}")))
            child = Child(
                f"simulator-{k}", python("-m", "simulators", "-c", str(path)), work
            ).start()
            children.append(child)
        for k, child in enumerate(children):
            expected = {spec.device_name(i) for i in range(k, spec.devices, count)}
            while expected - ports.keys():
                line = child.wait_line("  ", timeout=60)
                match = _SERVER_LINE.match(line)
                if match:
                    ports[match.group(1)] = int(match.group(2))
        yield children, ports
    finally:
        for child in children:
            child.stop()


def _start_subscriber(
    port: int, work: Path, spec: PlantSpec, sparkplug: bool = False
) -> tuple[Child, Path]:
    """The subscriber process, subscribed; returns it and where it will write its records.

    ``sparkplug``: the agent publishes as a Sparkplug edge node; the subscriber decodes
    its births and DDATA and needs the poll groups' size to tell a DDATA's group."""
    out = work / "subscriber.json"
    argv = ["--port", str(port), "--out", str(out)]
    if sparkplug:
        argv += ["--topic", SPARKPLUG_FILTER, "--sparkplug-group-tags", str(spec.group_tags)]
    else:
        argv += ["--topic", SUBSCRIBE_FILTER]
    subscriber = Child("subscriber", python("-m", "bench.subscriber", *argv), work).start()
    try:
        subscriber.wait_line("ready", timeout=30)
    except BaseException:
        subscriber.stop()
        raise
    return subscriber, out


def _wait_until_delivering(subscriber: Child, agent: Child, spec: PlantSpec) -> float:
    """Wait for every device's first batch at the subscriber; returns the seconds it took.

    The warm-up counts from here, not from the agent's start: loading a 20,000-tag plant
    file takes seconds, and a window must never begin before the agent polls.
    """
    started = time.time()
    seen: set[str] = set()
    while len(seen) < spec.devices:
        line = subscriber.wait_line("first ", timeout=max(60.0, spec.total_tags / 500))
        seen.add(line.split()[1])
        if not agent.alive():
            raise BenchError(f"the agent exited early{agent.tail()}")
    return round(time.time() - started, 2)


def _agent_argv(config: Path, profiler: str | None, artifacts: Path, stem: str) -> list[str]:
    run = ["-m", "edge_agent", "run", "-c", str(config), "--log-level", "warning"]
    if profiler == "pyinstrument":
        return python(*profiling.pyinstrument_args(artifacts / f"{stem}-pyinstrument.html"), *run)
    return python(*run)


def _start_record(
    options: ScaleOptions, scenario: str
) -> tuple[PlantSpec, str, Path, dict[str, Any]]:
    spec = PlantSpec(options.devices, options.tags, options.interval_s, options.group_tags)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{scenario}-{spec.total_tags}x{options.interval_s:g}s"
    if options.label:
        stem += f"-{options.label}"
    options.artifacts.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"bench-{scenario}-"))
    record: dict[str, Any] = {
        "scenario": scenario,
        "params": {
            "devices": spec.devices,
            "tags": spec.tags,
            "total_tags": spec.total_tags,
            "interval_s": spec.interval_s,
            "group_tags": spec.group_tags or spec.tags,
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "console": options.console,
        },
        "warnings": [],
    }
    return spec, stem, work, record


def _finish_record(record: dict[str, Any], options: ScaleOptions, stem: str) -> dict[str, Any]:
    add_warnings(record, options.profiler)
    record["targets"] = check_targets(record)
    path = options.artifacts / f"{stem}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    record["result_file"] = str(path)
    return record


def run_floor_only(
    options: ScaleOptions, scenario: str = "modbus-floor", log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The floor client alone on the scale plant: the protocol's own cost per value."""
    spec, stem, work, record = _start_record(options, scenario)
    record["pipeline"] = ["modbus", "bare pymodbus client"]
    try:
        with simulators(spec, options.sim_procs, work) as (sims, ports):
            record["params"]["sim_procs"] = len(sims)
            config = work / "plant.yaml"
            config.write_text(
                dump(agent_document(spec, ports, plant="bench", state_dir=str(work), sinks=[]))
            )
            record["floor"] = _run_floor(spec, config, work, options, sims, log)
            record["window_s"] = round(options.duration_s / options.interval_s) * options.interval_s
        return _finish_record(record, options, stem)
    finally:
        if options.keep:
            log(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_scale(
    options: ScaleOptions, scenario: str = "modbus-scale", log: Callable[[str], None] = print
) -> dict[str, Any]:
    """One agent run (and its floor run) at one size and interval; returns the run record."""
    spec, stem, work, record = _start_record(options, scenario)
    try:
        with simulators(spec, options.sim_procs, work) as (sims, ports):
            record["params"]["sim_procs"] = len(sims)
            log(f"  {len(sims)} simulator processes serve {spec.devices} devices")
            config = run_agent(record, spec, options, sims, ports, work, stem, log)
            if options.floor:
                log("  floor: bare pymodbus client, same reads, same ticks")
                record["floor"] = _run_floor(spec, config, work, options, sims, log)
                floor_us = record["floor"].get("cpu_us_per_value")
                agent_us = record["agent"].get("cpu_us_per_value")
                if floor_us and agent_us:
                    record["agent_floor_ratio"] = round(agent_us / floor_us, 2)
        return _finish_record(record, options, stem)
    finally:
        if options.keep:
            log(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_agent(
    record: dict[str, Any],
    spec: PlantSpec,
    options: ScaleOptions,
    sims: Sequence[Child],
    ports: dict[str, int],
    work: Path,
    stem: str,
    log: Callable[[str], None],
) -> Path:
    """One agent run on running simulators: its own broker, subscriber and sinks in
    ``work``; fills ``record`` (delivery, agent, helpers...) and returns the plant file."""
    with contextlib.ExitStack() as stack:
        broker = Mosquitto(
            port=free_port(), workdir=work / "mosquitto", extra_config="max_queued_messages 0\n"
        )
        broker.start()
        stack.callback(broker.stop)
        assert broker.process is not None
        pipeline = build_pipeline(options.pipeline, StageContext(broker.port, work, stack, spec))
        # The agent's /metrics: its own counters at both ends of the window, and
        # what each sink confirmed once the backlog is drained (bench/agent_metrics.py).
        health_port = free_port()
        pipeline.extra["service"] = {"health": {"port": health_port}}
        if options.console != "off":
            pipeline.extra["service"]["console"] = {}
        record["pipeline"] = ["modbus", *pipeline.stages, "subscriber"]
        record["pipeline_missing"] = pipeline.missing
        doc = agent_document(
            spec,
            ports,
            plant="bench",
            state_dir=str(work / "state"),
            sinks=pipeline.sinks,
            extra=pipeline.extra,
        )
        config = work / "plant.yaml"
        config.write_text(dump(doc))
        sparkplug = counting_sink(options.pipeline) == "sparkplug"
        subscriber, sub_out = _start_subscriber(broker.port, work, spec, sparkplug)
        stack.callback(subscriber.stop)
        agent = Child("agent", _agent_argv(config, options.profiler, options.artifacts, stem), work)
        agent.start()
        stack.callback(agent.stop)
        record["startup_s"] = _wait_until_delivering(subscriber, agent, spec)
        log(f"  agent delivering after {record['startup_s']} s; warm-up {options.warmup_s:g} s")

        helpers = [c.pid for c in sims] + [broker.process.pid, subscriber.pid]
        watch = stack.enter_context(
            watching(health_port, spec.device_name(0), "t00000")
            if options.console == "watched"
            else contextlib.nullcontext()
        )
        window, before, after, memory, spy, counters = _measure(
            agent,
            helpers,
            options,
            stem,
            watch=[agent, subscriber, *sims],
            log=log,
            probe=lambda: agent_metrics.scrape(health_port),
        )
        sleep_until(time.time() + max(2.0, 3 * options.interval_s), watch=[agent])
        final = _drained(health_port, agent)
        record["agent_counters"] = {
            "window": agent_metrics.window_counts(*counters),
            "after_drain": agent_metrics.losses(final),
        }
        code = agent.stop(timeout=30)
        if code != 0:
            record["warnings"].append(f"the agent exited with code {code}{agent.tail(1500)}")
        subscriber.stop()
        received = json.loads(sub_out.read_text())
        # Every tag plus each enum tag's code: the values the agent publishes per poll.
        groups = published_counts(spec)
        delivery = analyse_deliveries(received["records"], window, groups)
        latency_samples = delivery.pop("_latency_samples_ms")
        delivery["malformed_messages"] = received["malformed"]
        delivery["bad_reasons"] = received.get("bad_reasons", {})
        delivery["metric_batches"] = received.get("metric_batches", 0)
        sink_losses = record["agent_counters"]["after_drain"]
        delivery["sink_unconfirmed"] = {
            name: entry["unconfirmed"]
            for name, entry in sink_losses.items()
            if isinstance(entry, dict)
        }
        record["window_s"] = window.seconds
        record["delivery"] = delivery
        if watch is not None:
            record["console_watch"] = dataclasses.asdict(watch)
        record["agent"] = {
            **cpu_of(before, after, agent.pid, delivery["values_delivered"], window.seconds),
            "peak_rss_mb": round(memory.get("VmHWM", 0) / 1024, 1),
            "rss_end_mb": round(memory.get("VmRSS", 0) / 1024, 1),
        }
        record["helpers"] = helper_shares(
            before, after, sims, broker.process.pid, subscriber.pid, agent.pid
        )
        record["latency_histogram_ms"] = histogram(latency_samples)
        if spy is not None:
            record["profile"] = spy
        elif options.profiler == "pyinstrument":
            html = options.artifacts / f"{stem}-pyinstrument.html"
            record["profile"] = str(html) if html.exists() else "pyinstrument wrote nothing"
    return config


def _measure(
    agent: Child,
    helpers: Sequence[int],
    options: ScaleOptions,
    stem: str,
    *,
    watch: Sequence[Child],
    log: Callable[[str], None],
    probe: Callable[[], dict[str, float]] | None = None,
) -> tuple[
    Window,
    Sample,
    Sample,
    dict[str, int],
    str | None,
    tuple[dict[str, float], dict[str, float]],
]:
    """Warm up, then measure one window of whole ticks; returns what was sampled.

    ``probe`` (the agent's /metrics) is read right after the CPU samples at both ends.
    """
    interval = options.interval_s
    start = mid_tick_after(time.time() + options.warmup_s, interval)
    ticks = max(1, round(options.duration_s / interval))
    window = Window(round(start * 1e9), round(interval * 1e9), ticks)
    sleep_until(start, watch)
    pids = [agent.pid, *helpers, os.getpid()]
    before = sample(pids)
    counters_before = probe() if probe is not None else {}
    spy = None
    if options.profiler == "py-spy":
        spy = profiling.start_py_spy(agent.pid, window.seconds, options.artifacts / stem)
    log(f"  measuring {ticks} ticks ({window.seconds:g} s)")
    try:
        sleep_until(window.end_ns / 1e9, watch)
        after = sample(pids)
        counters_after = probe() if probe is not None else {}
        memory = memory_kib(agent.pid)
    finally:
        profile = profiling.finish_py_spy(spy) if spy is not None else None
    return window, before, after, memory, profile, (counters_before, counters_after)


def _drained(port: int, agent: Child, timeout: float = 60.0) -> dict[str, float]:
    """The agent's counters once no sink has a backlog (or after ``timeout`` seconds)."""
    deadline = time.time() + timeout
    while True:
        counters = agent_metrics.scrape(port)
        backlog = sum(v for k, v in counters.items() if k.startswith("edge_agent_buffer_batches"))
        if backlog == 0 or time.time() > deadline or not agent.alive():
            return counters
        time.sleep(0.5)


def _run_floor(
    spec: PlantSpec,
    config: Path,
    work: Path,
    options: ScaleOptions,
    sims: Sequence[Child],
    log: Callable[[str], None],
) -> dict[str, Any]:
    plan_path = work / "floor-plan.json"
    plan = read_plan(config)
    plan_path.write_text(json.dumps(plan))
    out = work / "floor.json"
    floor = Child(
        "floor", python("-m", "bench.floor", "--plan", str(plan_path), "--out", str(out)), work
    )
    floor.start()
    try:
        floor.wait_line("ready", timeout=60)
        warmup = options.floor_warmup_s if options.floor_warmup_s is not None else options.warmup_s
        start = mid_tick_after(time.time() + warmup, options.interval_s)
        ticks = max(1, round(options.duration_s / options.interval_s))
        window = Window(round(start * 1e9), round(options.interval_s * 1e9), ticks)
        sleep_until(start, [floor, *sims])
        pids = [floor.pid, *(c.pid for c in sims), os.getpid()]
        before = sample(pids)
        sleep_until(window.end_ns / 1e9, [floor, *sims])
        after = sample(pids)
        sleep_until(time.time() + max(1.0, options.interval_s), [floor])
    finally:
        floor.stop()
    records = json.loads(out.read_text())["records"]
    groups = {
        (spec.device_name(i), g): len(r) for i in range(spec.devices) for g, r in spec.groups()
    }
    result = analyse_floor(records, window, groups)
    result.update(cpu_of(before, after, floor.pid, result["values_read"], window.seconds))
    result["simulators_pct"] = [round(share(before, after, c.pid), 1) for c in sims]
    busy = after.busy - before.busy
    ours = after.total(before)
    result["foreign_cores"] = round(max(0.0, busy - ours) / window.seconds, 2)
    result["requests_per_poll"] = sum(
        len(g["requests"]) for d in plan["devices"] for g in d["groups"]
    )
    return result


def read_plan(config: Path) -> dict[str, Any]:
    """The agent's read plan for a plant file, as the floor client takes it."""
    from drivers.modbus.planner import AdaptivePlan
    from edge_agent.config import ModbusTcp
    from edge_agent.config.loader import load_config

    plant = load_config(config)
    devices = []
    interval = None
    for device in plant.devices:
        assert isinstance(device.connection, ModbusTcp)
        groups = []
        for group in device.poll_groups:
            interval = group.interval
            plan = AdaptivePlan.for_device(group.tags, device)
            groups.append(
                {
                    "name": group.name,
                    "tags": len(group.tags),
                    "requests": [[r.table, r.start, r.count] for r in plan.requests],
                }
            )
        devices.append(
            {
                "name": device.name,
                "host": device.connection.host,
                "port": device.connection.port,
                "unit": device.unit_id,
                "timeout": device.timeout,
                "groups": groups,
            }
        )
    return {"interval": interval, "devices": devices}

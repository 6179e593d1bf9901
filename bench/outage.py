"""Scenario 4's second half: a sink outage at scenario 1's load, then the drain.

The whole scale pipeline runs (simulators, metrics, outbox, MQTT and InfluxDB sinks,
the subscriber); after the warm-up the broker and the time-series server are both
stopped for ``outage_s`` seconds while the agent keeps polling, then started again
on the same ports. Reported:

* what piled up: outbox rows and bytes, and the agent's peak RSS, at the end of the
  outage (memory must not grow with the backlog: the outbox keeps it on disk);
* the drain time: from the servers' restart until the oldest batch the outbox holds
  is younger than a few poll intervals (only live data left), read from the agent's
  ``/metrics`` every half second;
* values lost, per sink: samples appended to the outbox minus samples the sink
  confirmed, once its backlog is empty (exact, from the agent's own counters), and
  the subscriber's count of distinct (device, group, timestamp) batches against the
  poll ticks of the whole run (QoS 1 may deliver a batch twice; that is not a loss).

The drain is paced by the outbox's ``replay_rate`` (10,000 samples/s per sink by
default, docs/OUTBOX.md); ``--replay-rate`` sets it, 0 = as fast as the sink takes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import agent_metrics
from bench.measure import sleep_until
from bench.plant import PlantSpec, agent_document, dump
from bench.procs import BenchError, Child, memory_kib
from bench.scale import (
    ScaleOptions,
    _agent_argv,
    _drained,
    _start_subscriber,
    _wait_until_delivering,
    simulators,
)
from bench.stages import StageContext, build_pipeline
from tests.servers import Mosquitto, free_port

#: The outbox counts as drained once its oldest batch is younger than this many ticks.
DRAINED_TICKS = 5


def run_outage(
    options: ScaleOptions,
    outage_s: float,
    replay_rate: int | None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    spec = PlantSpec(options.devices, options.tags, options.interval_s, options.group_tags)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-outage-{spec.total_tags}x{options.interval_s:g}s"
    stem += f"-{outage_s:g}s"
    if options.label:
        stem += f"-{options.label}"
    options.artifacts.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    record: dict[str, Any] = {
        "scenario": "outbox-outage",
        "params": {
            "devices": spec.devices,
            "tags": spec.tags,
            "total_tags": spec.total_tags,
            "interval_s": spec.interval_s,
            "warmup_s": options.warmup_s,
            "outage_s": outage_s,
            "replay_rate": replay_rate,
        },
        "warnings": [],
    }
    try:
        with contextlib.ExitStack() as stack:
            sims, ports = stack.enter_context(simulators(spec, options.sim_procs, work))
            broker = Mosquitto(
                port=free_port(), workdir=work / "mosquitto", extra_config="max_queued_messages 0\n"
            )
            broker.start()
            stack.callback(broker.stop)
            pipeline = build_pipeline(None, StageContext(broker.port, work, stack, spec))
            if replay_rate is not None:
                pipeline.extra["outbox"]["replay_rate"] = replay_rate
            record["params"]["replay_rate"] = pipeline.extra["outbox"].get("replay_rate", 10_000)
            health_port = free_port()
            pipeline.extra["service"] = {"health": {"port": health_port}}
            record["pipeline"] = ["modbus", *pipeline.stages, "subscriber"]
            config = work / "plant.yaml"
            config.write_text(
                dump(
                    agent_document(
                        spec,
                        ports,
                        plant="bench",
                        state_dir=str(work / "state"),
                        sinks=pipeline.sinks,
                        extra=pipeline.extra,
                    )
                )
            )
            subscriber, sub_out = _start_subscriber(broker.port, work, spec)
            stack.callback(subscriber.stop)
            agent = Child("agent", _agent_argv(config, None, options.artifacts, stem), work)
            agent.start()
            stack.callback(agent.stop)
            started = time.time()
            _wait_until_delivering(subscriber, agent, spec)
            sleep_until(time.time() + options.warmup_s, [agent])
            influx = pipeline.servers["influxdb"]

            log(f"  outage: broker and VictoriaMetrics stopped for {outage_s:g} s")
            down_at = time.time()
            broker.stop()
            influx.stop()
            sleep_until(down_at + outage_s, [agent, *sims])
            during = agent_metrics.scrape(health_port)
            rss = memory_kib(agent.pid)
            record["at_end_of_outage"] = {
                "outbox_rows": round(during.get("edge_agent_outbox_rows", 0.0)),
                "outbox_mb": round(during.get("edge_agent_outbox_bytes", 0.0) / 1e6, 1),
                "backlog_batches": {
                    s: round(during.get(f"edge_agent_buffer_batches{{{s}}}", 0.0))
                    for s in agent_metrics.sink_names(during)
                },
                "agent_rss_mb": round(rss.get("VmRSS", 0) / 1024, 1),
            }
            broker.start()
            influx.start()
            up_at = time.time()
            log("  servers back; waiting for the outbox to drain")
            limit = up_at + max(600.0, 3 * outage_s)
            while True:
                counters = agent_metrics.scrape(health_port)
                age = counters.get("edge_agent_outbox_oldest_age_seconds", 0.0)
                if age <= DRAINED_TICKS * spec.interval_s:
                    break
                if time.time() > limit or not agent.alive():
                    raise BenchError(f"the outbox did not drain (oldest batch {age:.0f} s old)")
                time.sleep(0.5)
            record["drain_s"] = round(time.time() - up_at, 1)
            record["outage_measured_s"] = round(up_at - down_at, 1)
            sleep_until(time.time() + max(2.0, 3 * spec.interval_s), [agent])
            final = _drained(health_port, agent)
            memory = memory_kib(agent.pid)
            record["agent"] = {
                "peak_rss_mb": round(memory.get("VmHWM", 0) / 1024, 1),
                "rss_end_mb": round(memory.get("VmRSS", 0) / 1024, 1),
            }
            record["after_drain"] = agent_metrics.losses(final)
            record["values_lost"] = sum(
                max(0, e["unconfirmed"])
                for e in record["after_drain"].values()
                if isinstance(e, dict)
            )
            code = agent.stop(timeout=30)
            if code != 0:
                record["warnings"].append(f"the agent exited with code {code}{agent.tail(1500)}")
            stopped = time.time()
            subscriber.stop()
            received = json.loads(sub_out.read_text())
            record["subscriber"] = _subscriber_view(received["records"], spec, started, stopped)
        path = options.artifacts / f"{stem}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        record["result_file"] = str(path)
        return record
    finally:
        if options.keep:
            log(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _subscriber_view(
    records: list[list[Any]], spec: PlantSpec, started: float, stopped: float
) -> dict[str, Any]:
    """Distinct batches the subscriber saw, live and historical, and ticks without one."""
    seen: dict[tuple[str, str], set[int]] = {}
    historical = duplicates = 0
    for _arrival, ts, device, group, _values, _good, hist in records:
        batches = seen.setdefault((device, group), set())
        if ts in batches:
            duplicates += 1
        batches.add(ts)
        historical += bool(hist)
    interval_ns = round(spec.interval_s * 1e9)
    gaps = close = 0
    for batches in seen.values():
        for a, b in itertools.pairwise(sorted(batches)):
            steps = round((b - a) / interval_ns)
            gaps += max(0, steps - 1)
            close += steps == 0  # two reads within half a tick: a late one and its successor
    return {
        "batches": sum(len(b) for b in seen.values()),
        "historical_messages": historical,
        "duplicate_messages": duplicates,
        "ticks_missing_between_first_and_last": gaps,
        "batches_closer_than_half_a_tick": close,
        "run_s": round(stopped - started, 1),
    }


def render_outage(record: dict[str, Any]) -> str:
    p = record["params"]
    end = record.get("at_end_of_outage", {})
    sub = record.get("subscriber", {})
    lines = [
        f"outbox outage: {p['total_tags']:,} tags every {p['interval_s']:g} s, "
        f"{record.get('outage_measured_s')} s outage, replay_rate {p['replay_rate']}",
        f"  pipeline: {' -> '.join(record.get('pipeline', []))}",
        f"  at the end of the outage: {end.get('outbox_rows')} rows, {end.get('outbox_mb')} MB "
        f"in the outbox, agent RSS {end.get('agent_rss_mb')} MB",
        f"  drain time after the servers came back: {record.get('drain_s')} s",
        f"  agent peak RSS {record.get('agent', {}).get('peak_rss_mb')} MB",
        "  values lost (appended - confirmed, per sink): "
        + ", ".join(
            f"{k} {v['unconfirmed']}"
            for k, v in record.get("after_drain", {}).items()
            if isinstance(v, dict)
        ),
        f"  subscriber: {sub.get('batches')} distinct batches, {sub.get('historical_messages')} "
        f"historical, {sub.get('duplicate_messages')} duplicates, "
        f"{sub.get('ticks_missing_between_first_and_last')} ticks missing",
    ]
    lines += [f"  WARNING: {w}" for w in record.get("warnings", [])]
    return "\n".join(lines)

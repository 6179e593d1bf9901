"""Pipeline stages a benchmark run can switch on, and the ones that are not merged yet.

The issue's scale scenario runs the whole pipeline: metrics on, outbox on, MQTT and
InfluxDB sinks on. Each stage adds to the agent's config (a sink entry, a top-level
section) and may need a server of its own. Stages that need code which is not on
this branch yet raise :class:`~bench.procs.NotMerged`: a run asked for them stops
with that message instead of reporting figures for a pipeline it did not run; the
default ("all") runs what exists and the report lists what was left out.

Adding a stage once its code lands is one function here (see the stubs below) and,
for a stage with a server, a start-up helper beside the broker's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.plant import PlantSpec
from bench.procs import NotMerged

#: Topic template of the benchmark's MQTT sink; the subscriber listens on ``bench/#``.
DATA_TOPIC = "bench/{plant}/{device}/{group}"
SUBSCRIBE_FILTER = "bench/#"
#: Metric batches land under the same filter; the subscriber counts them apart.
METRICS_TOPIC = "bench/{plant}/{device}/metrics"
#: The Sparkplug stage's group and node ids, and the subscriber's filter for it.
SPARKPLUG_GROUP = "bench"
SPARKPLUG_NODE = "bench-node"
SPARKPLUG_FILTER = f"spBv1.0/{SPARKPLUG_GROUP}/#"


@dataclass
class StageContext:
    """What a stage may use: the run's broker, its work directory, an exit stack for servers."""

    broker_port: int
    work_dir: Path
    stack: contextlib.ExitStack
    spec: PlantSpec


@dataclass
class PipelineSetup:
    """The parts of the agent config the stages contribute."""

    sinks: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    #: Servers a stage started (e.g. "influxdb" -> VictoriaMetrics), for end-of-run counts.
    servers: dict[str, Any] = field(default_factory=dict)


def _mqtt(ctx: StageContext, setup: PipelineSetup) -> None:
    # QoS 1, as a plant would run it: delivery confirmed by PUBACK before the batch
    # leaves the buffer. Always on: the subscriber behind it is where values are counted.
    setup.sinks.append(
        {
            "name": "mqtt",
            "type": "mqtt",
            "host": "127.0.0.1",
            "port": ctx.broker_port,
            "topic": DATA_TOPIC,
            "metrics_topic": METRICS_TOPIC,
            "qos": 1,
        }
    )


def _sparkplug(ctx: StageContext, setup: PipelineSetup) -> None:
    # Instead of the JSON MQTT sink (never beside it: the subscriber counts one of them):
    # a Sparkplug B edge node on the same broker, its data at QoS 0 as the specification
    # requires, each send confirmed by the sink's fence before the outbox lets go of it.
    setup.sinks.append(
        {
            "name": "sparkplug",
            "type": "sparkplug",
            "host": "127.0.0.1",
            "port": ctx.broker_port,
            "group_id": SPARKPLUG_GROUP,
            "edge_node_id": SPARKPLUG_NODE,
        }
    )


def counting_sink(requested: Sequence[str] | None) -> str:
    """The stage whose messages the subscriber counts: ``sparkplug`` when asked for, else
    the JSON ``mqtt`` sink, which is then always on."""
    return "sparkplug" if requested is not None and "sparkplug" in requested else "mqtt"


#: Stages whose code is not on this branch yet; an entry goes when its stage is written.
NOT_MERGED: dict[str, str] = {}

#: Windows of the metrics stage: 1m closes many times in a run, 15m is a plant's usual.
METRIC_WINDOWS = ["1m", "15m"]


def metrics_section(spec: PlantSpec) -> dict[str, Any]:
    """The ``metrics:`` section for a generated plant (bench/plant.py's layouts).

    Every meter gets energy (its uint32 x 0.01 kWh import counter, with the active
    power integrated beside it), every machine utilization (its enum state tag) and
    energy (uint32 x 0.001 kWh counter, power in kW). The tag positions are those of
    METER_MIX / MACHINE_MIX; a device with fewer tags than a mix has is left out.
    """
    meters: list[dict[str, Any]] = []
    machines: list[dict[str, Any]] = []
    for index in range(spec.devices):
        device = spec.device_name(index)
        kind = spec.kind(index)
        if kind == "power_meter" and spec.tags > 3:
            meters.append(
                {
                    "device": device,
                    "counter": {"tag": "t00003", "unit": "kWh"},
                    "power": {"tag": "t00002", "unit": "kW"},
                }
            )
        elif kind != "power_meter" and spec.tags > 4:
            machines.append(
                {
                    "device": device,
                    "state": {"tag": "t00002"},
                    "planned": "always",
                    "energy": {
                        "counter": {"tag": "t00004", "unit": "kWh"},
                        "power": {"tag": "t00000", "unit": "kW"},
                    },
                }
            )
    section: dict[str, Any] = {"windows": list(METRIC_WINDOWS), "grace": "2s"}
    if meters:
        section["meters"] = meters
        section["plant_total"] = [m["device"] for m in meters]
    if machines:
        section["machines"] = machines
    return section


def _metrics(ctx: StageContext, setup: PipelineSetup) -> None:
    # Metric batches go to the MQTT sink's metrics topic under the subscriber's filter,
    # where they are counted apart from raw values (attributes.kind == "metrics").
    setup.extra["metrics"] = metrics_section(ctx.spec)


def _outbox(ctx: StageContext, setup: PipelineSetup) -> None:
    # The outbox is always in front of every sink; this stage states its settings so a
    # record says what was measured: the SQLite file in the run's temporary work dir,
    # commits flushed to disk once a second (the default, survives kill -9).
    setup.extra["outbox"] = {
        "path": str(ctx.work_dir / "state" / "outbox.sqlite3"),
        "fsync": "interval",
        "fsync_interval": "1s",
    }


def _influxdb(ctx: StageContext, setup: PipelineSetup) -> None:
    # VictoriaMetrics speaks the InfluxDB v2 write API; it runs on loopback with its data
    # in the work dir. What the sink confirmed is read from the agent's /metrics.
    from tests.servers import VictoriaMetrics, free_port

    server = VictoriaMetrics(port=free_port(), workdir=ctx.work_dir / "victoria-metrics")
    server.start()
    ctx.stack.callback(server.stop)
    setup.servers["influxdb"] = server
    setup.sinks.append(
        {
            "name": "influxdb",
            "type": "influxdb",
            "url": server.url,
            "org": "bench",
            "bucket": "bench",
            "token": "bench",
        }
    )


#: In pipeline order. The issue's scenario 1 runs all of them.
STAGES: dict[str, Callable[[StageContext, PipelineSetup], None]] = {
    "metrics": _metrics,
    "outbox": _outbox,
    "mqtt": _mqtt,
    "sparkplug": _sparkplug,
    "influxdb": _influxdb,
}


def check_requested(requested: Sequence[str] | None) -> None:
    """Fail before anything starts when a requested stage is unknown or not merged."""
    for name in requested or ():
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
        if name in NOT_MERGED:
            raise NotMerged(f"the {name} stage {NOT_MERGED[name]}")


def build_pipeline(requested: Sequence[str] | None, ctx: StageContext) -> PipelineSetup:
    """Set up ``requested`` stages (None: every stage that exists on this branch).

    A stage asked for by name that cannot run raises :class:`NotMerged`.
    """
    setup = PipelineSetup()
    counted = counting_sink(requested)
    if requested is None:
        names = [name for name in STAGES if name != "sparkplug"]
    elif counted == "sparkplug" and "mqtt" in requested:
        raise ValueError("the sparkplug stage replaces the mqtt stage: ask for one of them")
    else:
        names = [counted, *[s for s in requested if s != counted]]
    for name in names:
        stage = STAGES.get(name)
        if stage is None:
            raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
        try:
            stage(ctx, setup)
        except NotMerged as exc:
            if requested is not None:
                raise
            setup.missing.append(f"{name} ({exc})")
            continue
        setup.stages.append(name)
    return setup

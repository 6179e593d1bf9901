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

from bench.procs import NotMerged

#: Topic template of the benchmark's MQTT sink; the subscriber listens on ``bench/#``.
DATA_TOPIC = "bench/{plant}/{device}/{group}"
SUBSCRIBE_FILTER = "bench/#"


@dataclass
class StageContext:
    """What a stage may use: the run's broker, its work directory, an exit stack for servers."""

    broker_port: int
    work_dir: Path
    stack: contextlib.ExitStack


@dataclass
class PipelineSetup:
    """The parts of the agent config the stages contribute."""

    sinks: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


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
            "qos": 1,
        }
    )


#: Stages whose code is not on this branch yet; an entry goes when its stage is written.
NOT_MERGED = {
    "metrics": "needs edge metrics (issue 4), not merged yet",
    "outbox": "needs the durable outbox (issue 5), not merged yet",
    "influxdb": "needs the InfluxDB sink (issue 5), not merged yet",
}


def _metrics(ctx: StageContext, setup: PipelineSetup) -> None:
    # Once issue 4 lands: add the plant's `metrics:` section for the generated devices
    # (energy from the meters' energy_import_kwh tags, utilization from the machines'
    # state tags) to setup.extra. Metric batches are counted apart by the subscriber.
    raise NotMerged(f"the metrics stage {NOT_MERGED['metrics']}")


def _outbox(ctx: StageContext, setup: PipelineSetup) -> None:
    # Once issue 5 lands: put the outbox section (state_dir is the run's work dir,
    # fsync policy stated in the report) in setup.extra.
    raise NotMerged(f"the outbox stage {NOT_MERGED['outbox']}")


def _influxdb(ctx: StageContext, setup: PipelineSetup) -> None:
    # Once issue 5 lands: start VictoriaMetrics on a free port (ctx.stack.callback to
    # stop it), append the influxdb sink entry, and count what it stored at the end.
    raise NotMerged(f"the influxdb stage {NOT_MERGED['influxdb']}")


#: In pipeline order. The issue's scenario 1 runs all of them.
STAGES: dict[str, Callable[[StageContext, PipelineSetup], None]] = {
    "metrics": _metrics,
    "outbox": _outbox,
    "mqtt": _mqtt,
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
    names = list(STAGES) if requested is None else ["mqtt", *[s for s in requested if s != "mqtt"]]
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

"""Prometheus exposition of the live counters: ``GET /metrics``.

A custom collector reads the runners' own counters at scrape time instead of
mirroring every poll into prometheus-client metric objects: nothing is added to the
data path, and devices and sinks that come and go with a reload simply appear or
disappear. Each agent gets its own :class:`CollectorRegistry` (no global state, so
tests and several agents in one process do not collide).

Names follow the Prometheus conventions: ``edge_agent_`` prefix, ``_total`` for
counters, base units (seconds, bytes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from edge_agent import __version__
from edge_agent.outbox import SinkView
from edge_agent.outbox.store import DEAD_LETTER_LIMIT
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats, health_problems
from edge_agent.sinks.base import EventCounting, RefusalCounting

PREFIX = "edge_agent"


class AgentCollector(Collector):
    """Everything the agent counts, per device and per sink, read when scraped."""

    def __init__(self, agent: Agent, stats: ServiceStats) -> None:
        self.agent = agent
        self.stats = stats

    def collect(self) -> Iterable[Metric]:
        yield from self._agent()
        yield from self._devices()
        yield from self._sinks()
        yield from self._outbox()

    def _agent(self) -> Iterator[Metric]:
        agent, stats = self.agent, self.stats
        info = InfoMetricFamily(f"{PREFIX}_build", "Version of the agent and the plant it serves.")
        info.add_metric([], {"version": __version__, "plant": agent.config.plant.name})
        yield info
        yield GaugeMetricFamily(
            f"{PREFIX}_start_time_seconds",
            "Start of the agent, seconds since the Unix epoch.",
            value=agent.started_at,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_healthy",
            "1 when /healthz answers 200, 0 when it answers 503.",
            value=0.0 if health_problems(agent, stats) else 1.0,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_pipeline_batches",
            "Batches emitted by the pollers into the pipeline.",
            value=agent.pipeline.batches_in,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_pipeline_samples",
            "Samples emitted by the pollers into the pipeline.",
            value=agent.pipeline.samples_in,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_pipeline_processor_errors",
            "Batches a processor (e.g. the metrics) failed on; they went on unprocessed.",
            value=agent.pipeline.processor_errors,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_event_loop_lag_seconds",
            "How late the event loop ran a timer at the last measurement.",
            value=stats.monitor.last_lag,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_event_loop_lag_max_seconds",
            "Largest event-loop lag since the start.",
            value=stats.monitor.max_lag,
        )
        reloads = CounterMetricFamily(
            f"{PREFIX}_config_reloads", "Config reloads, by result.", labels=["result"]
        )
        reloads.add_metric(["applied"], stats.reloads_applied)
        reloads.add_metric(["refused"], stats.reloads_refused)
        yield reloads
        watchdog = CounterMetricFamily(
            f"{PREFIX}_watchdog_checks",
            "Watchdog checks: ping sent to systemd, or withheld because the agent was stuck.",
            labels=["result"],
        )
        watchdog.add_metric(["sent"], stats.watchdog_pings)
        watchdog.add_metric(["withheld"], stats.watchdog_withheld)
        yield watchdog

    def _devices(self) -> Iterator[Metric]:
        sources = list(self.agent.sources)
        polls = CounterMetricFamily(
            f"{PREFIX}_device_polls", "Scheduled polls of a device.", labels=["device"]
        )
        good = CounterMetricFamily(
            f"{PREFIX}_device_good_polls",
            "Polls in which every sample was good.",
            labels=["device"],
        )
        failed = CounterMetricFamily(
            f"{PREFIX}_device_failed_polls",
            "Polls that failed as a whole (timeout, disconnected, device offline).",
            labels=["device"],
        )
        failures = CounterMetricFamily(
            f"{PREFIX}_device_failures",
            "Failed polls and bad samples of good polls, by reason.",
            labels=["device", "reason"],
        )
        skipped = CounterMetricFamily(
            f"{PREFIX}_device_skipped_ticks",
            "Poll ticks skipped because the previous poll overran.",
            labels=["device"],
        )
        state = GaugeMetricFamily(
            f"{PREFIX}_device_state",
            "1 for the state the device is in, 0 for the others.",
            labels=["device", "state"],
        )
        state_seconds = GaugeMetricFamily(
            f"{PREFIX}_device_state_seconds",
            "Seconds the device has been in its current state.",
            labels=["device"],
        )
        latency = HistogramMetricFamily(
            f"{PREFIX}_device_read_duration_seconds",
            "Duration of reads that went to the device, timeouts included.",
            labels=["device"],
        )
        now = time.monotonic()
        for source in sources:
            c, device = source.counters, source.device
            polls.add_metric([device], c.polls)
            good.add_metric([device], c.good_polls)
            failed.add_metric([device], c.failed_polls)
            skipped.add_metric([device], c.skipped_ticks)
            for reason, count in sorted(c.failures_by_reason.items()):
                failures.add_metric([device, reason], count)
            for candidate in DeviceState:
                state.add_metric([device, candidate.value], float(source.state is candidate))
            state_seconds.add_metric([device], now - c.state_since_monotonic)
            buckets = [(_le(bound), float(n)) for bound, n in c.read_seconds.cumulative()]
            latency.add_metric([device], buckets, c.read_seconds.sum)
        yield from (polls, good, failed, failures, skipped, state, state_seconds, latency)

    def _sinks(self) -> Iterator[Metric]:
        sinks = list(self.agent.sinks)
        sent = CounterMetricFamily(
            f"{PREFIX}_sink_batches_sent", "Batches delivered (confirmed).", labels=["sink"]
        )
        samples = CounterMetricFamily(
            f"{PREFIX}_sink_samples_sent", "Samples delivered (confirmed).", labels=["sink"]
        )
        failed = CounterMetricFamily(
            f"{PREFIX}_sink_send_failures",
            "Deliveries that failed and will be retried.",
            labels=["sink"],
        )
        connected = GaugeMetricFamily(
            f"{PREFIX}_sink_connected", "1 while the sink is connected.", labels=["sink"]
        )
        down = GaugeMetricFamily(
            f"{PREFIX}_sink_down_seconds",
            "Seconds since the sink's deliveries started failing (0 while it delivers).",
            labels=["sink"],
        )
        backlog = GaugeMetricFamily(
            f"{PREFIX}_buffer_batches",
            "Batches the sink has not confirmed yet (outbox: memory and disk).",
            labels=["sink"],
        )
        dropped = CounterMetricFamily(
            f"{PREFIX}_buffer_dropped_batches",
            "Batches of this sink the outbox's disk budget (max_bytes, max_age) dropped "
            "before delivery.",
            labels=["sink"],
        )
        refused = CounterMetricFamily(
            f"{PREFIX}_sink_points_refused",
            "Points the server refused for good, moved to the dead letters (InfluxDB).",
            labels=["sink"],
        )
        events = CounterMetricFamily(
            f"{PREFIX}_sink_events",
            "Events of a sink's own (Sparkplug: sessions, births, deaths, rebirth requests, "
            "commands refused, ...), docs/SPARKPLUG.md.",
            labels=["sink", "event"],
        )
        now = time.monotonic()
        for runner in sinks:
            name, c = runner.sink.name, runner.counters
            sent.add_metric([name], c.batches_sent)
            samples.add_metric([name], c.samples_sent)
            failed.add_metric([name], c.send_failures)
            connected.add_metric([name], float(runner.sink.connected))
            since = c.down_since_monotonic
            down.add_metric([name], 0.0 if since is None else now - since)
            backlog.add_metric([name], len(runner.buffer))
            dropped.add_metric([name], runner.buffer.dropped_batches)
            if isinstance(runner.sink, RefusalCounting):
                refused.add_metric([name], runner.sink.lines_refused)
            if isinstance(runner.sink, EventCounting):
                for event, count in runner.sink.event_counts().items():
                    events.add_metric([name, event], count)
        yield from (sent, samples, failed, connected, down, backlog, dropped, refused, events)

    def _outbox(self) -> Iterator[Metric]:
        """The durable outbox (docs/OUTBOX.md): what it holds, what it lost, replay."""
        outbox = self.agent.outbox
        if outbox is None:
            return
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_rows", "Batches stored in the outbox file.", value=outbox.rows
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_bytes",
            "Bytes of the stored batches, as counted against max_bytes.",
            value=outbox.bytes,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_max_bytes", "The outbox's disk budget.", value=outbox.config.max_bytes
        )
        oldest = outbox.oldest_at_ns
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_age_seconds",
            "Seconds since the oldest stored batch was appended (0 when empty).",
            value=0.0 if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9),
        )
        counters = (
            ("appended_batches", "Batches appended since the start.", outbox.appended_batches),
            ("appended_samples", "Samples appended since the start.", outbox.appended_samples),
            (
                "dropped_batches",
                "Batches dropped (disk budget, age, unwritable file) before every sink had them.",
                outbox.dropped_batches,
            ),
            ("dropped_samples", "Samples of the dropped batches.", outbox.dropped_samples),
            (
                "rejected_batches",
                "Batches that could not be stored (a value no sample can hold): skipped.",
                outbox.rejected_batches,
            ),
            (
                "write_failures",
                "Failed writes (or opens) of the outbox file (retried).",
                outbox.write_failures,
            ),
            (
                "lost_batches",
                "Committed batches found missing at the start (a damaged file or write-ahead "
                "log) that a sink had not confirmed.",
                outbox.lost_batches,
            ),
            (
                "corrupt_batches",
                "Stored batches that failed their checksum when read back: moved to the dead "
                "letters, never sent.",
                outbox.corrupt_batches,
            ),
        )
        for name, text, value in counters:
            yield CounterMetricFamily(f"{PREFIX}_outbox_{name}", text, value=value)
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_unwritten_batches",
            "Batches appended and not in the file yet (waiting in memory).",
            value=outbox.unwritten_batches,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_write_failing",
            "1 while the outbox file cannot be written (batches wait in memory).",
            value=float(outbox.write_failing),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_dead_letters",
            f"Refused points kept in the dead-letter table (the newest {DEAD_LETTER_LIMIT}).",
            value=min(outbox.dead_letters, DEAD_LETTER_LIMIT),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_recovered_batches",
            "Batches salvaged from a damaged outbox file at the start.",
            value=outbox.recovered_batches,
        )
        live = GaugeMetricFamily(
            f"{PREFIX}_outbox_sink_live_batches",
            "Of the sink's unconfirmed batches, those in the live lane (memory).",
            labels=["sink"],
        )
        dropped = CounterMetricFamily(
            f"{PREFIX}_outbox_sink_dropped_samples",
            "Samples of this sink the disk budget dropped before delivery.",
            labels=["sink"],
        )
        replayed = CounterMetricFamily(
            f"{PREFIX}_outbox_sink_replayed_batches",
            "Batches delivered from the backlog (read back from disk, historical).",
            labels=["sink"],
        )
        replayed_samples = CounterMetricFamily(
            f"{PREFIX}_outbox_sink_replayed_samples",
            "Samples delivered from the backlog.",
            labels=["sink"],
        )
        lost = CounterMetricFamily(
            f"{PREFIX}_outbox_sink_lost_batches",
            "Of the lost batches, those this sink had not confirmed.",
            labels=["sink"],
        )
        for runner in list(self.agent.sinks):
            view = runner.buffer
            if not isinstance(view, SinkView):
                continue
            name = runner.sink.name
            lost.add_metric([name], outbox.lost_by_sink.get(name, 0))
            live.add_metric([name], view.live)
            dropped.add_metric([name], view.dropped_samples)
            replayed.add_metric([name], view.replayed_batches)
            replayed_samples.add_metric([name], view.replayed_samples)
        yield from (live, dropped, replayed, replayed_samples, lost)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def build_registry(agent: Agent, stats: ServiceStats) -> CollectorRegistry:
    """The agent's own registry: its collector plus process and Python figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent, stats))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def render_metrics(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """Body and content type for a scrape, negotiated from the ``Accept`` header."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type

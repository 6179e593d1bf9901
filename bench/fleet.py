"""``python -m bench fleet``: N agent processes on one machine, publishing to a 3-node cluster.

Order of a run (every process on loopback, every port free, all stopped at the end):

1. the three-node NATS cluster of tests/nats_cluster.py (JetStream + MQTT);
2. the simulators (bench/fleet_sims.py): each agent has its own small plant (by default
   5 devices x 20 tags at 1 s), a few processes serve them all and log every read served;
3. the consumer (bench/fleet_consumer.py) on one node: QoS 1, persistent session;
4. N ``edge-agent run`` processes, each with its own plant file, plant name, state
   directory, MQTT client id and ``/metrics`` port, publishing JSON through the MQTT sink
   to ``brokers:`` (all three nodes, ``broker_order: shuffled``), or with ``--brokers one``
   to the first node alone (``host:``/``port:``, for an agent without broker lists);
5. a warm-up from the moment every agent's first batch arrived, then a measured window;
   with ``--kill-node`` the node holding most agents (never the consumer's) is killed
   (SIGKILL) a third into the window and started again at two thirds, and the time each
   of its agents took to connect again is measured from the nodes' ``/connz``;
6. a drain (every agent's backlog empty), SIGTERM to the agents, the consumer, the
   simulators; then the accounting (bench/fleet_accounting.py): every read a simulator
   served must have arrived at the consumer at least once.

CPU time and memory come from ``/proc`` (bench/procs.py), never from the agents.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import agent_metrics
from bench.fleet_accounting import account, parse_arrivals, resumed_after
from bench.fleet_consumer import DATA_TOPIC, META_TOPIC, METRICS_TOPIC, STATUS_TOPIC
from bench.fleet_report import fleet_figures, fleet_warnings
from bench.measure import sample, sleep_until
from bench.plant import PlantSpec, agent_document, dump, profile_document, published_counts
from bench.procs import BenchError, Child, CpuSample, NotMerged, memory_kib, python
from tests.nats_cluster import NatsCluster, NatsNode, nats_cluster
from tests.servers import free_port

#: Batches stamped up to this long before the read was served still match it: the
#: device timeout of the generated plants (1 s) and a margin for a loaded machine.
MAX_LAG_NS = 3_000_000_000


@dataclass
class FleetOptions:
    agents: int = 3
    devices: int = 5
    tags: int = 20
    interval_s: float = 1.0
    duration_s: float = 60.0
    warmup_s: float = 10.0
    kill_node: bool = False
    brokers: str = "cluster"
    """"cluster": ``brokers:`` with all three nodes, shuffled; "one": the first node only."""
    sim_procs: int = 0
    """0: one per CPU (at most one per agent)."""
    keep: bool = False
    label: str = ""
    artifacts: Path = field(default_factory=lambda: Path("bench/results"))


def agent_name(index: int) -> str:
    return f"gw{index:03d}"


def sink(options: FleetOptions, cluster: NatsCluster, agent: str) -> dict[str, Any]:
    """The agent's MQTT sink: the cluster's nodes, a client id of its own, the fleet topics."""
    entry: dict[str, Any] = {"name": "cloud", "type": "mqtt"}
    if options.brokers == "cluster":
        entry["brokers"] = [{"host": h, "port": p} for h, p in cluster.addresses]
        entry["broker_order"] = "shuffled"
    else:
        entry["host"], entry["port"] = cluster.nodes[0].address
    entry.update(
        client_id=f"fleet-{agent}",
        topic=DATA_TOPIC,
        status_topic=STATUS_TOPIC,
        meta_topic=META_TOPIC,
        metrics_topic=METRICS_TOPIC,
        qos=1,
    )
    return entry


def check_agent_takes(config: Path, options: FleetOptions) -> None:
    """Refuse early, in words, when this agent cannot read the generated plant file."""
    from edge_agent.config.loader import load_config
    from edge_agent.errors import ConfigError

    try:
        load_config(config)
    except ConfigError as exc:
        if options.brokers == "cluster":
            raise NotMerged(
                "this agent does not take a 'brokers:' list yet (issue 19 part A); "
                f"run with --brokers one to publish to one node: {exc}"
            ) from None
        raise BenchError(f"the generated plant file does not load: {exc}") from None


@contextlib.contextmanager
def fleet_simulators(
    spec: PlantSpec, agents: Sequence[str], procs: int, work: Path
) -> Iterator[tuple[list[Child], dict[str, dict[str, int]], list[Path]]]:
    """Serve every agent's plant; yield the processes, agent -> device -> port, the logs."""
    count = max(1, min(procs or (os.cpu_count() or 2), len(agents)))
    children: list[Child] = []
    outs: list[Path] = []
    ports: dict[str, dict[str, int]] = {}
    try:
        for k in range(count):
            argv = []
            for agent in agents[k::count]:
                path = work / f"profile-{agent}.yaml"
                path.write_text(dump(profile_document(spec, range(spec.devices), agent)))
                argv += ["--profile", f"{agent}={path}"]
            outs.append(work / f"served-{k}.json")
            children.append(
                Child(
                    f"fleet-sims-{k}",
                    python("-m", "bench.fleet_sims", *argv, "--out", str(outs[-1])),
                    work,
                ).start()
            )
        for child in children:
            while True:
                line = child.wait_line("", timeout=120)
                if line == "ready":
                    break
                if line.startswith("device "):
                    _, agent, device, port = line.split()
                    ports.setdefault(agent, {})[device] = int(port)
        yield children, ports, outs
    finally:
        for child in children:
            child.stop()


def clients_by_node(cluster: NatsCluster) -> dict[str, str]:
    """MQTT client id -> name of the running node holding its connection."""
    out: dict[str, str] = {}
    for node in cluster.nodes:
        if not node.running:
            continue
        with contextlib.suppress(OSError, ValueError):
            for conn in node.monitor("/connz?limit=100000").get("connections") or []:
                client = conn.get("mqtt_client")
                if client:
                    out[client] = node.name
    return out


def sink_events(port: int) -> dict[str, float]:
    """``edge_agent_sink_events_total`` by event (failovers, batches_resent: part A's names)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "edge_agent_sink_events":
            continue
        for s in family.samples:
            if not s.name.endswith("_created"):
                event = s.labels.get("event", "")
                out[event] = out.get(event, 0.0) + s.value
    return out


@dataclass
class NodeMeter:
    """CPU and peak memory of each node over the window, across a kill and a restart."""

    spans: dict[str, list[tuple[CpuSample, CpuSample, int]]] = field(default_factory=dict)
    open: dict[str, tuple[int, CpuSample]] = field(default_factory=dict)

    def begin(self, node: NatsNode, *, since_spawn: bool = False) -> None:
        """Start a span of ``node``'s process: from now, or (``since_spawn``, a node just
        restarted) from its spawn, so that what it spends before it answers (a NATS node
        catches its JetStream streams up for 10-35 s) is counted too."""
        assert node.process is not None
        pid = node.process.pid
        self.open[node.name] = (pid, CpuSample(0.0, {}) if since_spawn else CpuSample.of(pid))

    def end(self, node: NatsNode) -> None:
        pid, first = self.open.pop(node.name)
        with contextlib.suppress(OSError):
            hwm = memory_kib(pid).get("VmHWM", 0)
            self.spans.setdefault(node.name, []).append((first, CpuSample.of(pid), hwm))

    def figures(self, seconds: float) -> dict[str, dict[str, float]]:
        return {
            name: {
                "cpu_pct": round(100 * sum(b.seconds_since(a) for a, b, _ in spans) / seconds, 1),
                "peak_rss_mb": round(max(h for _, _, h in spans) / 1024, 1),
            }
            for name, spans in sorted(self.spans.items())
        }


@dataclass
class Outage:
    """What the kill of one node did to the agents connected to it."""

    node: str
    killed_at: float
    restarted_at: float | None = None
    agents: list[str] = field(default_factory=list)
    #: Client id -> seconds from the kill until a running node listed its connection.
    reconnect_s: dict[str, float] = field(default_factory=dict)
    #: Agent -> seconds from the kill until its first batch arrived (the failover time).
    resumed_s: dict[str, float] = field(default_factory=dict)
    rejoin_s: float | None = None

    def summary(self) -> dict[str, Any]:
        times = sorted(self.reconnect_s.values())
        resumed = sorted(self.resumed_s.values())
        return {
            "node": self.node,
            "agents_on_node": len(self.agents),
            "resumed": len(resumed),
            "resumed_s": {
                "p50": resumed[len(resumed) // 2] if resumed else None,
                "max": resumed[-1] if resumed else None,
            },
            "connection_seen_s": {
                "p50": times[len(times) // 2] if times else None,
                "max": times[-1] if times else None,
            },
            "restarted_after_s": (
                round(self.restarted_at - self.killed_at, 1) if self.restarted_at else None
            ),
            "node_start_s": self.rejoin_s,
            "not_resumed": sorted(set(self.agents) - {f"fleet-{a}" for a in self.resumed_s}),
        }


def _kill_and_restart(
    cluster: NatsCluster,
    consumer_node: NatsNode,
    meter: NodeMeter,
    restart_at: float,
    watch: Sequence[Child],
    log: Callable[[str], None],
) -> Outage:
    """Kill the node holding most agents, follow their reconnects, restart it at ``restart_at``."""
    where = clients_by_node(cluster)
    candidates = [n for n in cluster.nodes if n is not consumer_node]
    victim = max(candidates, key=lambda n: sum(1 for v in where.values() if v == n.name))
    agents = sorted(c for c, n in where.items() if n == victim.name and c.startswith("fleet-gw"))
    meter.end(victim)
    cluster.kill_node(victim)
    outage = Outage(victim.name, time.time(), agents=agents)
    log(f"  killed {victim.name} ({len(agents)} agents on it)")
    deadline = restart_at + 60.0
    while time.time() < deadline and len(outage.reconnect_s) < len(agents):
        if outage.restarted_at is None and time.time() >= restart_at:
            started = time.time()
            cluster.start_node(victim)
            outage.restarted_at = time.time()
            outage.rejoin_s = round(outage.restarted_at - started, 2)
            meter.begin(victim, since_spawn=True)
            log(f"  restarted {victim.name}")
        where = clients_by_node(cluster)
        now = time.time()
        for agent in agents:
            if agent not in outage.reconnect_s and agent in where:
                outage.reconnect_s[agent] = round(now - outage.killed_at, 2)
        sleep_until(now + 0.2, watch)
    if outage.restarted_at is None:
        sleep_until(restart_at, watch)
        cluster.start_node(victim)
        outage.restarted_at = time.time()
        meter.begin(victim, since_spawn=True)
        log(f"  restarted {victim.name}")
    return outage


def _drain(ports: dict[str, int], agents: Sequence[Child], timeout: float = 60.0) -> None:
    """Wait until no agent has a backlog (or ``timeout``)."""
    deadline = time.time() + timeout
    pending = dict(ports)
    while pending and time.time() < deadline:
        for agent, port in list(pending.items()):
            counters = agent_metrics.scrape(port)
            if not sum(v for k, v in counters.items() if k.startswith("edge_agent_buffer_batches")):
                del pending[agent]
        sleep_until(time.time() + 0.5, agents)


def run_fleet(options: FleetOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """One fleet run; returns its record (also written to ``options.artifacts``)."""
    spec = PlantSpec(options.devices, options.tags, options.interval_s)
    names = [agent_name(k) for k in range(options.agents)]
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-fleet-{options.agents}"
    stem += "-kill" if options.kill_node else ""
    stem += f"-{options.label}" if options.label else ""
    options.artifacts.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    record: dict[str, Any] = {
        "scenario": "fleet",
        "params": {
            "agents": options.agents,
            "devices_per_agent": spec.devices,
            "tags_per_device": spec.tags,
            "interval_s": spec.interval_s,
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "kill_node": options.kill_node,
            "brokers": options.brokers,
            "broker": "nats-server 2.15 (3 nodes, JetStream, MQTT)",
        },
        "warnings": [],
        # Other helpers may share the machine: the load before and after says how much.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        with contextlib.ExitStack() as stack:
            cluster = stack.enter_context(nats_cluster(work / "nats"))
            sims, ports, served_files = stack.enter_context(
                fleet_simulators(spec, names, options.sim_procs, work)
            )
            record["params"]["sim_procs"] = len(sims)
            # The consumer is never on the node that dies: it stands for the platform.
            consumer_node = cluster.nodes[1 if options.brokers == "one" else 0]
            consumer_out = work / "consumer.json"
            consumer = Child(
                "fleet-consumer",
                python(
                    "-m", "bench.fleet_consumer",
                    "--port", str(consumer_node.mqtt_port),
                    "--out", str(consumer_out),
                ),
                work,
            ).start()  # fmt: skip
            stack.callback(consumer.stop)
            consumer.wait_line("ready", timeout=30)
            health: dict[str, int] = {}
            agents: list[Child] = []
            for name in names:
                health[name] = free_port()
                doc = agent_document(
                    spec,
                    ports[name],
                    plant=name,
                    state_dir=str(work / name / "state"),
                    sinks=[sink(options, cluster, name)],
                    extra={"service": {"health": {"port": health[name]}}},
                )
                config = work / name / "plant.yaml"
                config.parent.mkdir(parents=True, exist_ok=True)
                config.write_text(dump(doc))
                if not agents:
                    check_agent_takes(config, options)
                argv = python(
                    "-m", "edge_agent", "run", "-c", str(config), "--log-level", "warning"
                )
                agent = Child(f"agent-{name}", argv, work).start()
                stack.callback(agent.stop)
                agents.append(agent)
            started = time.time()
            seen: set[str] = set()
            while len(seen) < len(names):
                seen.add(consumer.wait_line("first ", timeout=60 + 2 * len(names)).split()[1])
            record["startup_s"] = round(time.time() - started, 1)
            log(f"  {len(names)} agents delivering after {record['startup_s']} s")
            children = [*agents, consumer, *sims]
            sleep_until(time.time() + options.warmup_s, children)

            pids = [a.pid for a in agents] + [consumer.pid, *(s.pid for s in sims), os.getpid()]
            meter = NodeMeter()
            for node in cluster.nodes:
                meter.begin(node)
            start = time.time()
            before = sample(pids)
            log(f"  measuring {options.duration_s:g} s")
            outage = None
            if options.kill_node:
                sleep_until(start + options.duration_s / 3, children)
                outage = _kill_and_restart(
                    cluster,
                    consumer_node,
                    meter,
                    start + 2 * options.duration_s / 3,
                    children,
                    log,
                )
            sleep_until(start + options.duration_s, children)
            after = sample(pids)
            end = time.time()
            for node in cluster.nodes:
                meter.end(node)
            memory = {a.pid: memory_kib(a.pid) for a in agents}
            record["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

            _drain(health, agents)
            final = {
                name: agent_metrics.losses(agent_metrics.scrape(health[name])) for name in names
            }
            events = {name: sink_events(health[name]) for name in names}
            codes = _stop_all(names, agents)
            sleep_until(time.time() + 2.0, [consumer])
            consumer.stop()
            for child in sims:
                child.stop()
            received = json.loads(consumer_out.read_text())
            served: dict[tuple[str, str], list[int]] = {}
            for path in served_files:
                for agent_id, devices in json.loads(path.read_text()).items():
                    for device, times in devices.items():
                        served[(agent_id, device)] = times
            counts = published_counts(spec)
            arrivals = parse_arrivals(received["records"])
            held = None
            if outage is not None:
                outage.resumed_s = resumed_after(
                    arrivals,
                    [c.removeprefix("fleet-") for c in outage.agents],
                    round(outage.killed_at * 1e9),
                )
                # Batches stamped from the kill until the last agent delivered again were
                # held back by the outage: their latency is reported apart.
                last = max(outage.resumed_s.values(), default=0.0)
                held = (round(outage.killed_at * 1e9), round((outage.killed_at + last) * 1e9))
            result = account(
                served,
                arrivals,
                cut_ns=round(end * 1e9),
                max_lag_ns=MAX_LAG_NS,
                values_per_batch={(a, d, g): n for a in names for (d, g), n in counts.items()},
                latency_window=(round(start * 1e9), round(end * 1e9)),
                outage=held,
            )
            record.update(
                fleet_figures(
                    result=result,
                    received=received,
                    window=(start, end),
                    before=before,
                    after=after,
                    agents=agents,
                    memory=memory,
                    consumer=consumer,
                    sims=sims,
                    nodes=meter.figures(end - start),
                )
            )
            record["agent_counters"] = {
                "unconfirmed_samples": sum(
                    e["unconfirmed"]
                    for f in final.values()
                    for e in f.values()
                    if isinstance(e, dict)
                ),
                "sink_events": _sum_events(events),
            }
            record["agent_exit_codes"] = sorted(set(codes.values()))
            if outage is not None:
                record["failover"] = outage.summary()
            fleet_warnings(record)
        path = options.artifacts / f"{stem}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        record["result_file"] = str(path)
        return record
    finally:
        if options.keep:
            log(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _stop_all(names: Sequence[str], agents: Sequence[Child]) -> dict[str, int]:
    """SIGTERM every agent at once (each drains and exits), then collect the exit codes."""
    for agent in agents:
        if agent.alive():
            agent.process.send_signal(signal.SIGTERM)
    deadline = time.time() + 30
    for agent in agents:
        with contextlib.suppress(subprocess.TimeoutExpired):
            agent.process.wait(max(0.1, deadline - time.time()))
    return {name: agent.stop(timeout=5) for name, agent in zip(names, agents, strict=True)}


def _sum_events(events: dict[str, dict[str, float]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for per_agent in events.values():
        for event, value in per_agent.items():
            out[event] = out.get(event, 0) + round(value)
    return out

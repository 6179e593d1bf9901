"""``python -m bench SCENARIO``: the end-to-end benchmarks of issue 7.

Scenarios (each starts its own simulators, broker and subscriber on loopback, runs
a fixed window after a warm-up, and writes a JSON record per run to --out):

  modbus-scale   N devices x M tags through the whole agent (default 20 x 500, at 1 s
                 then 100 ms), followed by the floor on the same plant: the agent's
                 CPU per value divided by the floor's is the figure that matters
                 (--pairs N: N interleaved agent and floor runs, the ratio's median
                 and range: the figure of record, see bench/pairs.py)
  modbus-floor   the floor alone: a bare pymodbus client doing the agent's reads
  growth         modbus-scale at 1k, 5k, 10k and 20k tags: cost per value vs size
  smoke          a few seconds at a small size, for CI (exit 1 unless the report is
                 complete and no value was lost)
  opcua          OPC UA read / subscribe of --nodes (1,000 and 10,000) beside a bare
                 asyncua loop; --duration is per measurement here (default 10 s)
  outbox         outbox append / replay rates, then (with --outage) the scale pipeline
                 with the broker and VictoriaMetrics stopped for that long, and the
                 drain time
  fleet          --agents N agent processes, each with its own small plant (--devices 5
                 x --tags 20 at --interval 1s), publishing to a 3-node NATS cluster; a
                 central consumer checks every served read arrived; --kill-node kills a
                 node mid-run and restarts it (exit 1 if anything was lost)

The codec micro-benchmark stays separate: python -m bench.bench_codec.
Exit codes: 0 done, 1 a run failed or (smoke) its report is incomplete or lossy,
2 bad arguments, 3 the scenario needs something that is not here (not merged yet,
profiler missing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import plot, profiling
from bench.procs import BenchError, NotMerged, Unavailable, git_revision, machine_info
from bench.report import render_run
from bench.scale import ScaleOptions, run_floor_only, run_scale
from bench.stages import check_requested
from edge_agent.config import parse_duration

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

DEFAULT_TOTALS = (1_000, 5_000, 10_000, 20_000)


def _seconds(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not isinstance(value, float) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return value


def _intervals(text: str) -> list[float]:
    return [_seconds(part) for part in text.split(",") if part.strip()]


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of counts"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("counts must be positive")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(__doc__ or "").replace("``", ""),
        epilog="Figures and the commands that produced them: docs/BENCHMARKS.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario",
        choices=["modbus-scale", "modbus-floor", "growth", "smoke", "opcua", "outbox", "fleet"],
    )
    parser.add_argument(
        "--devices", type=int, default=None, help="simulated devices (20; fleet: 5 per agent)"
    )
    parser.add_argument(
        "--tags", type=int, default=None, help="tags per device (default 500; fleet: 20)"
    )
    parser.add_argument(
        "--interval",
        type=_intervals,
        default=None,
        help="poll interval(s), comma separated, one run each (modbus-scale default: 1s,100ms; "
        "others: 1s)",
    )
    parser.add_argument(
        "--duration", type=_seconds, default=None, help="measured window (60s; opcua: 10s)"
    )
    parser.add_argument("--warmup", type=_seconds, default=10.0, help="warm-up before it (10s)")
    parser.add_argument(
        "--totals",
        type=_counts,
        default=list(DEFAULT_TOTALS),
        help="growth: total tag counts, spread over --devices (default 1000,5000,10000,20000)",
    )
    parser.add_argument(
        "--group-tags", type=int, default=0, help="tags per poll group (default: one group)"
    )
    parser.add_argument(
        "--sim-procs", type=int, default=0, help="simulator processes (default: one per CPU, min 2)"
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the floor run")
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="modbus-scale: N interleaved agent and floor runs (A B, B A, ...) on one plant; "
        "the ratio is the median of the pairs' ratios, with its range (bench/pairs.py). "
        "The figure of record: --interval 1s --pairs 5 --duration 30s --warmup 5s",
    )
    parser.add_argument(
        "--pipeline",
        default="all",
        help="stages, comma separated: metrics,outbox,mqtt,influxdb; 'all' (default) runs every "
        "stage on this branch and lists the missing ones in the report",
    )
    parser.add_argument("--profile", choices=profiling.PROFILERS, help="profile the agent")
    parser.add_argument(
        "--nodes", type=_counts, default=[1_000, 10_000], help="opcua: node counts (1000,10000)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="opcua: rounds per measurement")
    parser.add_argument(
        "--outage", type=_seconds, default=None, help="outbox: sink outage to run (e.g. 10m)"
    )
    parser.add_argument(
        "--replay-rate",
        type=int,
        default=None,
        help="outbox outage: the outbox's replay_rate (default: the agent's, 10000; 0 unpaced)",
    )
    parser.add_argument(
        "--append-batches", type=int, default=50_000, help="outbox: batches appended / replayed"
    )
    parser.add_argument("--agents", type=int, default=3, help="fleet: agent processes (default 3)")
    parser.add_argument(
        "--kill-node",
        action="store_true",
        help="fleet: kill the broker node holding most agents a third into the window, "
        "restart it at two thirds",
    )
    parser.add_argument(
        "--brokers",
        choices=["cluster", "one"],
        default="cluster",
        help="fleet: 'cluster' (default) gives each agent all three nodes (brokers:, shuffled); "
        "'one' the first node only (host:/port:, for an agent without broker lists)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="JSON records")
    parser.add_argument(
        "--plot", type=Path, help="PNG of cost per value and latency (growth, scale)"
    )
    parser.add_argument("--label", default="", help="added to result file names")
    parser.add_argument("--keep", action="store_true", help="keep work directories (configs, logs)")
    parser.add_argument(
        "--console",
        choices=["off", "on", "watched"],
        default="off",
        help="modbus-scale: the web console off (default), on (nobody looking), or watched "
        "(one device page's live stream and a chart every 10 s)",
    )
    return parser


def _options(args: argparse.Namespace, **overrides: Any) -> ScaleOptions:
    pipeline = None if args.pipeline == "all" else [s for s in args.pipeline.split(",") if s]
    values: dict[str, Any] = {
        "devices": args.devices,
        "tags": args.tags,
        "duration_s": 60.0 if args.duration is None else args.duration,
        "warmup_s": args.warmup,
        "group_tags": args.group_tags,
        "sim_procs": args.sim_procs,
        "floor": not args.no_floor,
        "pipeline": pipeline,
        "profiler": args.profile,
        "keep": args.keep,
        "label": args.label,
        "artifacts": args.out,
        "console": args.console,
    }
    values.update(overrides)
    return ScaleOptions(**values)


_REVISION_AT_START = ""


def _stamp(record: dict[str, Any], argv: Sequence[str]) -> None:
    """What a record needs to be reproduced and judged."""
    record["command"] = "python -m bench " + " ".join(argv)
    # The code that ran is the code at the start: a long run may outlive a commit.
    record["revision"] = _REVISION_AT_START or git_revision()
    record["machine"] = machine_info()
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _run_all(
    runs: Sequence[ScaleOptions],
    run: Callable[..., dict[str, Any]],
    scenario: str,
    argv: Sequence[str],
    render: Callable[[dict[str, Any]], str] = render_run,
) -> list[dict[str, Any]]:
    records = []
    for options in runs:
        print(
            f"{scenario}: {options.devices} x {options.tags} tags every {options.interval_s:g} s",
            flush=True,
        )
        record = run(options, scenario, log=lambda line: print(line, flush=True))
        _stamp(record, argv)
        Path(record["result_file"]).write_text(json.dumps(record, indent=2) + "\n")
        print(render(record))
        print(f"  record: {record['result_file']}\n", flush=True)
        records.append(record)
    return records


def _smoke_problems(record: dict[str, Any]) -> list[str]:
    """Why a smoke record is not a complete, loss-free report (empty: it is)."""
    problems = []
    required = {
        "agent": ("cpu_us_per_value", "cpu_s_per_100k_values", "peak_rss_mb", "core_share_pct"),
        "delivery": ("values_per_s_delivered", "values_lost", "values_expected"),
        "floor": ("cpu_us_per_value", "values_read"),
    }
    for section, keys in required.items():
        for key in keys:
            if record.get(section, {}).get(key) is None:
                problems.append(f"{section}.{key} is missing")
    for section in ("jitter_ms", "latency_ms"):
        for key in ("p50", "p99"):
            if record.get("delivery", {}).get(section, {}).get(key) is None:
                problems.append(f"delivery.{section}.{key} is missing")
    if record.get("agent_floor_ratio") is None:
        problems.append("agent_floor_ratio is missing")
    delivery = record.get("delivery", {})
    if delivery.get("values_lost") != 0:
        problems.append(f"{delivery.get('values_lost')} values lost")
    for sink, unconfirmed in delivery.get("sink_unconfirmed", {}).items():
        if unconfirmed:
            problems.append(f"the {sink} sink left {unconfirmed} samples unconfirmed")
    if not delivery.get("values_delivered"):
        problems.append("no values delivered")
    if record.get("floor", {}).get("values_missed"):
        problems.append(f"the floor missed {record['floor']['values_missed']} values")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    global _REVISION_AT_START
    _REVISION_AT_START = git_revision()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    fleet = args.scenario == "fleet"
    if args.devices is None:
        args.devices = 5 if fleet else 20
    if args.tags is None:
        args.tags = 20 if fleet else 500
    if args.devices < 1 or args.tags < 1 or args.agents < 1:
        parser.error("--devices, --tags and --agents must be positive")
    pipeline = None if args.pipeline == "all" else [s for s in args.pipeline.split(",") if s]
    try:
        check_requested(pipeline)
    except ValueError as exc:
        parser.error(str(exc))
    except Unavailable as exc:
        print(f"bench {args.scenario}: not merged yet: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        if args.profile:
            profiling.check_available(args.profile)
        return _dispatch(args, argv)
    except Unavailable as exc:
        kind = "not merged yet" if isinstance(exc, NotMerged) else "not available"
        print(f"bench {args.scenario}: {kind}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except BenchError as exc:
        print(f"bench {args.scenario}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    scenario = args.scenario
    if scenario == "opcua":
        return _opcua(args, argv)
    if scenario == "outbox":
        return _outbox(args, argv)
    if scenario == "fleet":
        return _fleet(args, argv)
    if scenario == "smoke":
        # Small and short, at 1 s: an overloaded CI machine must not turn a late read
        # into a "lost" value (a read a whole interval late is counted as missed).
        options = _options(
            args,
            devices=2,
            tags=60,
            interval_s=1.0,
            duration_s=3.0,
            warmup_s=1.0,
            floor_warmup_s=0.5,
            floor=True,
        )
        [record] = _run_all([options], run_scale, scenario, argv)
        problems = _smoke_problems(record)
        for problem in problems:
            print(f"smoke: {problem}", file=sys.stderr)
        return EXIT_FAILED if problems else 0
    if scenario == "modbus-floor":
        intervals = args.interval or [1.0]
        runs = [_options(args, interval_s=i) for i in intervals]
        _run_all(runs, run_floor_only, scenario, argv)
        return 0
    if scenario == "modbus-scale":
        intervals = args.interval or [1.0, 0.1]
        runs = [_options(args, interval_s=i) for i in intervals]
        if args.pairs:
            if args.no_floor:
                raise BenchError("--pairs needs the floor; drop --no-floor")
            from bench.pairs import render_pairs, run_pairs

            def paired(options: ScaleOptions, scenario: str, log: Callable[[str], None]) -> Any:
                return run_pairs(options, args.pairs, scenario, log)

            _run_all(runs, paired, scenario, argv, render_pairs)
            return 0
        records = _run_all(runs, run_scale, scenario, argv)
        _plot(records, args, "modbus-scale", f"{args.devices} devices x {args.tags} tags")
        return 0
    # growth
    intervals = args.interval or [1.0]
    runs = []
    for interval in intervals:
        for total in args.totals:
            if total % args.devices:
                raise BenchError(f"{total} tags do not divide over {args.devices} devices")
            runs.append(_options(args, tags=total // args.devices, interval_s=interval))
    records = _run_all(runs, run_scale, scenario, argv)
    print(growth_table(records))
    _plot(records, args, "growth", f"growth over {args.devices} devices")
    return 0


def _save(record: dict[str, Any], args: argparse.Namespace, argv: Sequence[str], name: str) -> str:
    _stamp(record, argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return str(path)


def _opcua(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Scenario 3: bench/bench_opcua.py at each --nodes size (in-process agent pipeline)."""
    import asyncio

    from bench import bench_opcua

    seconds = 10.0 if args.duration is None else args.duration
    records = asyncio.run(bench_opcua.main(seconds, args.rounds, tuple(args.nodes)))
    record = {
        "scenario": "opcua",
        "seconds_per_measurement": seconds,
        "runs": [r for r in records if "summary" not in r],
        # Per size and mode: the median and range over the pairs, and the load.
        "summaries": [r for r in records if "summary" in r],
    }
    print(f"  record: {_save(record, args, argv, 'opcua')}")
    return 0


def _outbox(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Scenario 4: append / replay rates, then (--outage) an outage at scenario 1's load."""
    import asyncio

    from bench import bench_outbox
    from bench.outage import render_outage, run_outage

    rates = asyncio.run(bench_outbox.main(args.append_batches, args.append_batches, 250))
    record: dict[str, Any] = {"scenario": "outbox", "rates": rates}
    if args.outage is not None:
        options = _options(args, interval_s=(args.interval or [1.0])[0])
        outage = run_outage(options, args.outage, args.replay_rate)
        _stamp(outage, argv)
        Path(outage["result_file"]).write_text(json.dumps(outage, indent=2) + "\n")
        print(render_outage(outage), flush=True)
        record["outage_record"] = outage["result_file"]
        if outage.get("values_lost"):
            print(f"  record: {_save(record, args, argv, 'outbox')}")
            return EXIT_FAILED
    print(f"  record: {_save(record, args, argv, 'outbox')}")
    return 0


def _fleet(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Issue 19: a fleet of agents on one machine (bench/fleet.py); exit 1 if anything was lost."""
    from bench.fleet import FleetOptions, run_fleet
    from bench.fleet_report import render_fleet

    options = FleetOptions(
        agents=args.agents,
        devices=args.devices,
        tags=args.tags,
        interval_s=(args.interval or [1.0])[0],
        duration_s=60.0 if args.duration is None else args.duration,
        warmup_s=args.warmup,
        kill_node=args.kill_node,
        brokers=args.brokers,
        sim_procs=args.sim_procs,
        keep=args.keep,
        label=args.label,
        artifacts=args.out,
    )
    print(
        f"fleet: {options.agents} agents x {options.devices} devices x {options.tags} tags "
        f"every {options.interval_s:g} s",
        flush=True,
    )
    record = run_fleet(options, log=lambda line: print(line, flush=True))
    _stamp(record, argv)
    Path(record["result_file"]).write_text(json.dumps(record, indent=2) + "\n")
    print(render_fleet(record))
    print(f"  record: {record['result_file']}", flush=True)
    delivery = record.get("delivery", {})
    return EXIT_FAILED if delivery.get("lost") or delivery.get("short_batches") else 0


def growth_table(records: Sequence[dict[str, Any]]) -> str:
    """Cost per value against plant size: the flatness the issue asks for, at a glance."""
    lines = ["tags     interval  agent µs/value  floor µs/value  agent/floor  peak RSS MB  lost"]
    for r in records:
        p = r["params"]
        a = r.get("agent", {})
        lines.append(
            f"{p['total_tags']:<8,} {p['interval_s']:<9g} {a.get('cpu_us_per_value')!s:<15} "
            f"{r.get('floor', {}).get('cpu_us_per_value')!s:<15} "
            f"{r.get('agent_floor_ratio')!s:<12} {a.get('peak_rss_mb')!s:<12} "
            f"{r.get('delivery', {}).get('values_lost')}"
        )
    return "\n".join(lines)


def _plot(
    records: Sequence[dict[str, Any]], args: argparse.Namespace, name: str, title: str
) -> None:
    if not records:
        return
    path = args.plot or args.out / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.png"
    print(plot.plot_runs(records, path, title))


if __name__ == "__main__":
    raise SystemExit(main())

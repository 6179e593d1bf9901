"""What the metrics processor costs per batch: the demo plant's metrics, one simulated hour.

Run from the repository root: ``python -m bench.bench_metrics``. Feeds the metrics
processor of configs/demo-plant.yaml (two meters with counter and power, three
machines with state, parts and energy; windows 1m, 15m, 1h, 1d, shift) with
synthetic 1 s batches in simulated time, and prints microseconds per batch for a
meter batch, a machine batch, a batch the metrics do not use (pass-through), the
natural-gas meter (carrier family), and the oven and its meter that the demo's
baseline turns into savings (a temperature mean per window, savings at each close).
Windows close as the simulated clock passes them, so closing is included.

The demo's line meter has a demand guard and the plant has idle-energy and
stalled-meter events: the meter and machine batches pay for them. ``--no-guard``
runs the same plant without them, to show what they cost.

The demo's meters are priced by a time-of-use tariff (metrics.tariffs): the meter
batch is also timed with the tariffs taken out, and the tariff calendar's split of
one energy interval is timed alone, inside a period (the hot path) and across a
period boundary.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edge_agent.config.loader import load_config
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.tariff import PERIODS, TariffCalendar
from edge_agent.metrics.windows import NS_PER_S, LocalTime
from edge_agent.model import Quality, SampleBatch, Value

ROOT = Path(__file__).resolve().parent.parent
START = 1_714_953_600  # 2024-05-06 08:00 Asia/Shanghai
STATES = ("run", "idle", "run", "fault", "run", "off")


class Clock:
    now = float(START)

    def __call__(self) -> float:
        return self.now


def batches(second: int) -> dict[str, SampleBatch]:
    """One batch per device, shaped like the demo plant's poll groups (only metric tags)."""
    t_ns = (START + second) * 1_000_000_000
    state = STATES[(second // 97) % len(STATES)]
    kw = 30.0 + (second % 7)
    made = second // 5

    def batch(device: str, group: str, names: tuple[str, ...], values: list[Value]) -> SampleBatch:
        n = len(values)
        return SampleBatch(device, group, t_ns, names, values, [Quality.GOOD] * n, [""] * n)

    return {
        "meter": batch(
            "line-meter",
            "electrical",
            METER_NAMES,
            [kw, round(123456.78 + second * 0.009, 2)],
        ),
        "machine": batch(
            "cnc-1",
            "fast",
            MACHINE_NAMES,
            [state, kw, made + 100, made + 98, 2, round(8421.5 + second * 0.004, 3)],
        ),
        "other": batch("cnc-1", "slow", ("program", "ideal_cycle_time"), ["O1001", 95.0]),
        # A natural-gas meter (the carrier family): counter in Nm3 and flow in Nm3/h.
        "gas": batch("dryer-gas", "gas", GAS_NAMES, [12.0, round(5000.0 + second * 0.0033, 2)]),
        # The oven and its meter feed the baseline's savings (parts, outdoor temperature).
        "oven": batch(
            "oven-1",
            "fast",
            OVEN_NAMES,
            [state, made + 10, 1, 12.0 + (second % 600) / 100, 8.0 + (second % 3)],
        ),
        "oven-meter": batch(
            "oven-meter", "electrical", METER_NAMES, [10.0, round(2000.0 + second * 0.0028, 2)]
        ),
    }


METER_NAMES = ("power_active", "energy_import")
GAS_NAMES = ("flow", "volume")
OVEN_NAMES = ("state", "parts_good", "parts_scrap", "outdoor_c", "power")
MACHINE_NAMES = ("state", "power", "parts_total", "parts_good", "parts_scrap", "energy")


def run(seconds: int, guard: bool = True, tariffs: bool = True) -> dict[str, float]:
    clock = Clock()
    config = load_config(ROOT / "configs" / "demo-plant.yaml", env={})
    assert config.metrics is not None
    metrics = config.metrics
    if not guard:
        meters = [m.model_copy(update={"demand_guard": None}) for m in metrics.meters]
        metrics = metrics.model_copy(update={"meters": meters, "events": type(metrics.events)()})
    if not tariffs:
        metrics = metrics.model_copy(update={"tariffs": []})
    if metrics is not config.metrics:
        config = config.model_copy(update={"metrics": metrics})
    processor = MetricsProcessor(config, clock=clock)
    spent = dict.fromkeys(batches(0), 0.0)
    for second in range(seconds):
        clock.now = START + second
        for kind, batch in batches(second).items():
            started = time.perf_counter()
            processor(batch)
            spent[kind] += time.perf_counter() - started
    return {kind: total / seconds * 1e6 for kind, total in spent.items()}


def tariff_split(count: int) -> dict[str, float]:
    """Nanoseconds of TariffCalendar.add for one 1 s interval: inside a period (the
    cached stretch) and across a period boundary (a fresh look-up each time)."""
    config = load_config(ROOT / "configs" / "demo-plant.yaml", env={})
    assert config.metrics is not None
    calendar = TariffCalendar(config.metrics.tariffs[0].spec(), LocalTime(config.plant.timezone))
    into = [0.0] * len(PERIODS)
    t0 = START * NS_PER_S
    calendar.add(into, t0, t0 + NS_PER_S, 1.0)
    started = time.perf_counter()
    for k in range(count):
        calendar.add(into, t0 + k * NS_PER_S, t0 + (k + 1) * NS_PER_S, 1.0)
    inside = (time.perf_counter() - started) / count * 1e9
    boundary = (START + 3 * 3600) * NS_PER_S  # 11:00 local: peak -> flat
    started = time.perf_counter()
    for _ in range(count // 10):
        calendar.add(into, boundary - NS_PER_S // 2, boundary + NS_PER_S // 2, 1.0)
        calendar.add(into, t0, t0 + NS_PER_S, 1.0)  # back in the morning: never cached
    across = (time.perf_counter() - started) / (count // 10) / 2 * 1e9
    return {"inside": inside, "across": across}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=3600, help="simulated seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs")
    parser.add_argument(
        "--no-guard", action="store_true", help="without the demand guard and the events"
    )
    args = parser.parse_args()
    results = [run(args.seconds, not args.no_guard) for _ in range(args.runs)]
    plain = min(
        run(args.seconds, not args.no_guard, tariffs=False)["meter"] for _ in range(args.runs)
    )
    for kind, label in (
        ("meter", "meter batch (counter + power -> 6 window kinds, guard)"),
        ("machine", "machine batch (state, 3 parts counters, counter + power)"),
        ("other", "batch the metrics do not use (pass-through)"),
        ("gas", "gas meter batch (carrier: counter + flow -> 6 window kinds)"),
        ("oven", "oven batch (state, parts, outdoor temperature for savings)"),
        ("oven-meter", "oven meter batch (counter + power; savings close per 15m)"),
    ):
        best = min(r[kind] for r in results)
        print(f"{label:60s} {best:6.1f} µs per batch")
    print(f"{'meter batch without its tariff':60s} {plain:6.1f} µs per batch")
    splits = [tariff_split(100_000) for _ in range(args.runs)]
    for kind, label in (
        ("inside", "tariff split of a 1 s interval inside a period"),
        ("across", "tariff split of a 1 s interval across a period boundary"),
    ):
        best = min(r[kind] for r in splits)
        print(f"{label:60s} {best:6.0f} ns per interval")


if __name__ == "__main__":
    main()

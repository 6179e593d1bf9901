"""A simulated oven line with a known energy model, run through the metrics processor.

The oven (simulators/energy_model.py) draws ``idle_kw`` while powered, ``kwh_per_part``
per part and ``kw_per_degc`` per degree of outdoor temperature above ``reference_c``;
its meter adds a base load. So an hourly window's energy is, in expectation::

    kWh = (base + idle - kw_per_degc x reference) + kwh_per_part x parts + kw_per_degc x T

which is what a baseline on ``[parts_good, temperature]`` must recover. The same harness
writes the demo's baseline CSV, the oven's windows before its efficiency change as the
agent measured them::

    python -m tests.baseline_sim --days 14 --window 15m --out configs/demo-baseline.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.model import SampleBatch
from simulators.profile import Profile, parse_profile
from tests.metrics_sim import SimulatedPolling, metric_tags

ZONE = ZoneInfo("Asia/Shanghai")
#: The model's parameters (the test's ground truth).
BASE_KW = 2.0
IDLE_KW = 10.0
KWH_PER_PART = 0.4
KW_PER_DEGC = 0.5
REFERENCE_C = 10.0
IDLE_FACTOR = 0.7
STEP_S = 10


def local(day: int, hour: int = 0) -> int:
    return int(dt.datetime(2024, 5, day, hour, tzinfo=ZONE).timestamp())


START = local(6)  # Monday 6 May 2024, 00:00 local
CHANGE = local(20)  # idle power cut by 30 % from Monday 20 May
END = local(27)

PROFILE = f"""
name: oven-line
timezone: Asia/Shanghai
seed: 16
step_s: {STEP_S}
servers:
  - name: gateway
    transport: tcp
    units:
      - unit_id: 1
        name: oven-meter
        model: {{kind: power_meter, base_load_kw: {BASE_KW}, loads: [oven-1]}}
        points:
          - {{name: energy_import, table: input, address: 0, type: uint32, scale: 0.01,
             quantity: energy_import_kwh}}
      - unit_id: 2
        name: oven-1
        model:
          kind: cnc
          shifts: [{{start: "00:00", end: "24:00"}}]
          days: [mon, tue, wed, thu, fri, sat, sun]
          cycle_time_s: 60
          scrap_rate: 0.0
          mean_run_s: 1800
          mean_idle_s: 900
          fault_probability: 0.1
          energy_model: {{idle_kw: {IDLE_KW}, kwh_per_part: {KWH_PER_PART},
                         kw_per_degc: {KW_PER_DEGC}, reference_c: {REFERENCE_C}}}
          outdoor: {{mean_c: 22, daily_amplitude_c: 6, day_to_day_c: 5}}
          efficiency_change: {{at: "2024-05-20T00:00:00+08:00", idle_factor: {IDLE_FACTOR}}}
        points:
          - {{name: state, address: 0, type: uint16}}
          - {{name: parts_good, address: 2, type: uint32}}
          - {{name: parts_scrap, address: 4, type: uint32}}
          - {{name: outdoor_c, address: 6, type: float32}}
"""

DEVICES = """
plant: {name: oven-plant, timezone: Asia/Shanghai}
state_dir: /tmp/unused
devices:
  - name: oven-meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    unit_id: 1
    poll_groups:
      - name: energy
        interval: 10s
        tags:
          - {name: energy_import, table: input, address: 0, type: uint32, scale: 0.01, unit: kWh}
  - name: oven-1
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    unit_id: 2
    poll_groups:
      - name: fast
        interval: 10s
        tags:
          - {name: state, address: 0, type: uint16, enum: {0: "off", 1: idle, 2: run, 3: fault}}
          - {name: parts_good, address: 2, type: uint32}
          - {name: parts_scrap, address: 4, type: uint32}
          - {name: outdoor_c, address: 6, type: float32, unit: degC}
metrics:
  windows: [15m, 1h, 1d]
  meters:
    - {device: oven-meter, counter: {tag: energy_import}, max_power: 200}
  machines:
    - {device: oven-1, state: {tag: state}, parts: {good: parts_good, scrap: parts_scrap},
       planned: always}
  baselines:
"""

BASELINE = """
    - name: {name}
      meters: [oven-meter]
      machines: [oven-1]
      window: {window}
      variables: [parts_good, temperature]
      temperature: {{device: oven-1, tag: outdoor_c}}
      fit: {fit}
      quality: {quality}
"""


def baseline_yaml(
    name: str, fit: str, quality: str = "{min_r2: 0.75, max_cv_rmse: 0.2}", window: str = "1h"
) -> str:
    return BASELINE.format(name=name, fit=fit, quality=quality, window=window)


def plant(baselines: str) -> PlantConfig:
    return parse_config(DEVICES + baselines, "oven-line.yaml", env={})


def profile(text: str = PROFILE) -> Profile:
    return parse_profile(text)


class Run:
    """The plant polled from ``start``, fed to a processor with its state in ``state_dir``."""

    def __init__(self, config: PlantConfig, state_dir: Path | None, start: float = START) -> None:
        self.config = config
        self.state_dir = state_dir
        self.polling = SimulatedPolling(profile(), config, start, only_tags=metric_tags(config))
        self.now = [float(start)]
        self.published: list[SampleBatch] = []
        self.processor = self.new_processor()

    def new_processor(self) -> MetricsProcessor:
        """A processor as the agent starts one (restored from the state directory)."""
        store = None if self.state_dir is None else StateStore(self.state_dir / STATE_FILE)
        return MetricsProcessor(self.config, clock=lambda: self.now[0], store=store)

    def until(self, end: float, each: Callable[[int], None] | None = None) -> None:
        """Poll every step up to ``end``; ``each(t)`` after the batches of each step."""
        t = round(self.now[0])
        while t <= end:
            self.now[0] = t
            for batch in self.polling.poll(t):
                self.published += [b for b in self.processor(batch) if b is not batch]
            if each is not None:
                each(t)
            t += STEP_S
        self.now[0] = t - STEP_S

    def batches(self, device: str, family: str) -> Iterator[tuple[dict[str, Any], SampleBatch]]:
        for batch in self.published:
            if batch.device == device and batch.attributes.get("family") == family:
                yield dict(zip(batch.names, batch.values, strict=True)), batch


def write_csv(days: int, window: str, out: Any) -> None:
    """The oven's windows before its efficiency change, as the agent measured them."""
    period = f'{{from: "2024-05-06", to: "2024-05-{5 + days:02d}"}}'
    config = plant(baseline_yaml("oven-line", period, window=window))
    run = Run(config, None)
    run.until(local(6 + days) + 60)
    unit = run.processor.savings[0]
    out.write("start,energy_kwh,parts_good,temperature\n")
    for record in unit.fitting.history.records:
        if record.coverage < 0.9 or record.energy_kwh is None:
            continue
        start = dt.datetime.fromtimestamp(record.start_ns / 1e9, ZONE).isoformat()
        v = record.variables
        out.write(f"{start},{record.energy_kwh:.3f},{v['parts_good']:.0f},{v['temperature']:.3f}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--window", default="1h")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(
            "# The oven of tests/baseline_sim.py (the demo plant's oven-1 and oven-meter share "
            "its model) before its efficiency change, as the agent measured it. Regenerate:\n"
            f"# python -m tests.baseline_sim --days {args.days} --window {args.window} "
            f"--out {args.out}\n"
        )
        write_csv(args.days, args.window, out)


if __name__ == "__main__":
    main()

"""The demo plant's gas meter against the simulator's exact volume (issue 16, carriers).

Three simulated hours of the dryer's natural-gas meter (simulators/gas_meter.py) polled
every second through its register encoding (uint32 x 0.01 Nm3 that rolls over in the
first hour, float32 flow), with a five-minute communication gap, fed to the metrics
processor. Every published ``carrier`` window must hold the true volume to the counter's
resolution, ``kgce = amount x kgce_per_unit`` of the configured calorific value, the
configured kgCO2e, and a coverage that shows the gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.model import Quality, SampleBatch
from simulators.gas_meter import UNITS_PER_NM3
from simulators.profile import load_profile
from tests.metrics_sim import SimulatedPolling, metric_tags
from tests.plant import CONFIG_FILE, PROFILE_FILE

START = 1_714_953_600 + 600  # 2024-05-06 00:10 UTC: windows start inside the run too
END = START + 3 * 3600
GAP = (START + 5000, START + 5300)  # the compressor house answers nothing for 5 minutes
RESOLUTION = 0.01
CALORIFIC = 35.59  # MJ/Nm3 (demo-plant.yaml)
KGCO2E = 2.0  # kgCO2e per Nm3: a value the test configures, not a published factor

METRICS_YAML = f"""
metrics:
  windows: [1m, 15m, 1h]
  grace: 5s
  meters:
    - device: dryer-gas
      carrier: natural_gas
      counter: {{tag: volume, unit: Nm3}}
      power: {{tag: flow, unit: Nm3/h}}
      max_power: 40
      calorific_value: {CALORIFIC}
      kgco2e_per_unit: {KGCO2E}
"""


def plant_config() -> PlantConfig:
    text = CONFIG_FILE.read_text()
    text = text[: text.index("\nmetrics:")]
    return parse_config(text + METRICS_YAML, "carriers.yaml", env={})


@dataclass
class Run:
    processor: MetricsProcessor
    volume: list[int]  # true volume units at START + k
    batches: list[SampleBatch]


@pytest.fixture(scope="module")
def run() -> Run:
    config = plant_config()
    polling = SimulatedPolling(
        load_profile(PROFILE_FILE), config, START, only_tags=metric_tags(config)
    )
    polling.gaps.append(("dryer-gas", GAP[0], GAP[1]))
    now = [float(START)]
    processor = MetricsProcessor(config, clock=lambda: now[0])
    gas = polling.simulation.gas_meter("dryer-gas")
    volume: list[int] = []
    published: list[SampleBatch] = []
    for t in range(START, END + 1):
        now[0] = t
        for batch in polling.poll(t):
            published += [b for b in processor(batch) if b is not batch]
        volume.append(gas.volume_units())
        if t >= processor.next_deadline():
            published += processor.close_due(t)
    return Run(processor, volume, published)


def windows(run: Run, kind: str) -> list[tuple[dict[str, object], SampleBatch]]:
    out = []
    for batch in run.batches:
        attrs = batch.attributes
        mine = (batch.device, attrs["family"], attrs["window"]) == ("dryer-gas", "carrier", kind)
        if mine and int(attrs["window_start"]) >= START * 10**9:
            out.append((dict(zip(batch.names, batch.values, strict=True)), batch))
    return out


def test_the_counter_rolled_over_and_the_gap_happened(run: Run) -> None:
    (unit,) = run.processor.carriers
    assert unit.feed.counter is not None
    assert unit.feed.counter.rollovers == 1
    assert unit.feed.counter.jumps == 0
    assert not run.processor.meters, "a gas meter is no electricity meter"


def test_amount_kgce_and_kgco2e_equal_the_true_volume(run: Run) -> None:
    kgce_per_nm3 = CALORIFIC / 29.3076  # 1.21436... kgce/Nm3, by hand
    checked = 0
    for kind in ("1m", "15m", "1h"):
        for values, batch in windows(run, kind):
            start = int(batch.attributes["window_start"]) // 10**9 - START
            end = int(batch.attributes["window_end"]) // 10**9 - START
            true = (run.volume[end] - run.volume[start]) / UNITS_PER_NM3
            bridged = (GAP[0] - 1 - START, GAP[1] - START)  # last good poll .. first good
            if (
                start < bridged[1]
                and bridged[0] < end
                and not start <= bridged[0] < bridged[1] <= end
            ):
                continue  # a window cutting the bridged gap gets its share, spread evenly
            assert batch.names == ("amount", "kgce", "kgco2e", "coverage", "late_amount")
            amount = values["amount"]
            assert isinstance(amount, float)
            assert abs(amount - true) < RESOLUTION + 1e-9, (kind, batch.attributes, amount, true)
            assert values["kgce"] == pytest.approx(amount * kgce_per_nm3, abs=1e-4)
            assert values["kgco2e"] == pytest.approx(amount * KGCO2E, abs=1e-4)
            assert values["late_amount"] == 0.0
            checked += 1
    assert checked > 180 + 12 + 3 - 10


def test_coverage_shows_the_gap(run: Run) -> None:
    hours = windows(run, "1h")
    assert len(hours) >= 2
    for values, batch in hours:
        start = int(batch.attributes["window_start"]) // 10**9
        end = int(batch.attributes["window_end"]) // 10**9
        overlap = max(0, min(end, GAP[1]) - max(start, GAP[0] - 1))
        coverage = values["coverage"]
        assert isinstance(coverage, float)
        assert coverage == pytest.approx(1 - overlap / 3600, abs=2 / 3600)
    inside = [b for v, b in windows(run, "1m") if v["coverage"] == 0.0]
    assert inside, "the minutes of the gap have no coverage"
    assert all(b.qualities[3] is Quality.UNCERTAIN for b in inside)


def test_each_batch_says_its_carrier_and_the_unit_of_its_amount(run: Run) -> None:
    """A subscriber (and the reports) read the unit of ``amount`` from the batch itself."""
    batches = windows(run, "1h")
    assert batches
    for _, batch in batches:
        assert batch.attributes["carrier"] == "natural_gas"
        assert batch.attributes["unit"] == "Nm3"

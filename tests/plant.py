"""The demo plant for tests: simulator profile on free ports, agent config, expected values.

The expected value of an agent tag is computed from the simulator's own model
quantities (its ground truth at the simulator clock), located by table and address
in the simulator's register map: an independent check of planner, codec and
config, since the simulator encodes with its own struct-based encoder.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from pathlib import Path

from edge_agent.config import REGISTER_COUNT, ModbusDeviceConfig, ModbusTag, PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.rounding import DecimalScale, shortest_float32_exact
from simulators.profile import Point, Profile, parse_profile

ROOT = Path(__file__).resolve().parent.parent
PROFILE_FILE = ROOT / "simulators" / "profiles" / "demo-plant.yaml"
CONFIG_FILE = ROOT / "configs" / "demo-plant.yaml"
DEMO_PORTS = {"line-gateway": 15020, "utility": 15021}


def demo_profile() -> Profile:
    """The demo profile with every TCP server on a free port (port 0)."""
    text = PROFILE_FILE.read_text()
    for port in DEMO_PORTS.values():
        text = text.replace(f"port: {port}", "port: 0")
    return parse_profile(text, str(PROFILE_FILE))


def demo_devices_text(
    ports: Mapping[str, int], devices: tuple[str, ...], edits: Mapping[str, str] | None = None
) -> str:
    """configs/demo-plant.yaml pointed at ``ports``, with ``devices`` only (no metrics:
    they refer to devices dropped here), text ``edits`` applied, no sinks: a plant file
    for tests that add their own sink and change devices (reload, remote configuration)."""
    text = CONFIG_FILE.read_text()
    for server, port in DEMO_PORTS.items():
        text = text.replace(f"port: {port}}}", f"port: {ports[server]}}}")
    text = text.partition("\nmetrics:\n")[0] + "\n"
    head, _, rest = text.partition("devices:\n")
    blocks = rest.split("\n  - name: ")
    kept = [b for b in blocks[1:] if b.split("\n", 1)[0] in devices]
    text = head + "devices:\n" + "".join(f"\n  - name: {b}" for b in kept).lstrip("\n") + "\n"
    for old, new in (edits or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def demo_config(
    ports: Mapping[str, int],
    state_dir: Path,
    extra_yaml: str = "",
    *,
    environment: Mapping[str, str] | None = None,
    **replace: str,
) -> PlantConfig:
    """configs/demo-plant.yaml pointed at ``ports`` (server name -> bound port);
    ``environment``: more variables the text's ``${VAR}`` may read."""
    text = CONFIG_FILE.read_text()
    for server, port in DEMO_PORTS.items():
        text = text.replace(f"port: {port}}}", f"port: {ports[server]}}}")
    for old, new in replace.items():
        text = text.replace(old, new)
    return parse_config(
        text + extra_yaml,
        str(CONFIG_FILE),
        env={**(environment or {}), "EDGE_AGENT_STATE": str(state_dir)},
    )


def expected_value(
    profile: Profile, quantities: Mapping[str, object], device: ModbusDeviceConfig, tag: ModbusTag
) -> object:
    """What the agent should decode for ``tag``, from the simulator's model quantities."""
    unit = next(u for s in profile.servers for u in s.units if u.name == device.name)
    point = next(
        p
        for p in unit.points
        if p.table == tag.table and p.address <= tag.address < p.address + _width(p)
    )
    value = quantities[point.quantity or point.name]
    if tag.bit is not None:
        assert isinstance(value, int)
        return bool((value >> tag.bit) & 1)
    if tag.enum is not None:
        assert isinstance(value, int)
        return tag.enum[value]
    return value


def _width(point: Point) -> int:
    if point.type == "string":
        return point.length or 0
    return REGISTER_COUNT[point.type]


def close_enough(tag: ModbusTag, got: object, want: object) -> bool:
    """Equality up to what the wire format can carry (float32 precision, scaled integers)."""
    if isinstance(want, bool | str) or tag.enum is not None:
        return got == want
    if isinstance(want, int | float) and isinstance(got, int | float):
        if tag.type == "float32" and tag.scale == 1.0 and tag.offset == 0.0:
            # The register holds want as a float32; the agent hands over that float32's
            # shortest decimal (14.545378, not 14.545377731323242).
            as_float32 = struct.unpack("<f", struct.pack("<f", want))[0]
            return got == shortest_float32_exact(as_float32)
        if tag.type == "float32":
            return math.isclose(got, want, rel_tol=2e-7, abs_tol=1e-30)
        if tag.type == "float64":
            return math.isclose(got, want, rel_tol=1e-15)
        # An integer register scaled by `scale` carries `want` to within half a step,
        # and no more decimals than scale and offset have (12.1, not 12.100000000000001).
        decimals = DecimalScale(tag.scale, tag.offset).decimals
        return abs(got - want) <= abs(tag.scale) / 2 + 1e-9 and round(got, decimals) == got
    return got == want

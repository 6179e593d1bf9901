"""Every device template is also a simulator profile, generated from the template file.

The register map the simulator serves for a template is made here, from the same file
the agent expands (``configs/templates/<name>.yaml``), so the two cannot drift: each
template tag becomes a :class:`~simulators.profile.Point` at the tag's table, address,
type and byte order, serving the model quantity the tag names (``quantity:``).

Units: a quantity has its own unit (the meter's power is in kW); a tag may be in
another of the same kind (an SDM630 reports W). The point's scale absorbs the factor
(``point.scale = tag.scale / factor``), so the raw register holds what the device
would send.
An enum state tag whose device has its own codes (an INVT drive says 1 for forward
running) serves them through ``Point.codes``, built from the tag's enum map and the
template's machine role (the first code whose label means the model's state).

The meter model's counter resolution follows the template's energy counter (0.1 kWh
for an EM24, 1 Wh for an iEM3255), so an integer counter is served floored, exactly as
the device counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_agent.config.loader import describe_error
from edge_agent.config.template_files import (
    DeviceTemplate,
    TemplateTag,
    library,
    load_template,
    unknown_template,
)
from edge_agent.metrics.utilization import STATE_NAMES
from simulators.drive import DRIVE_QUANTITIES
from simulators.machine import MACHINE_QUANTITIES, MachineState
from simulators.meter import METER_QUANTITIES
from simulators.profile import Profile, ProfileError, Unit
from simulators.schema import Quantity

UNIT_NAME = "device"
SERVER_NAME = "device"

#: (quantity unit, tag unit) -> factor from the quantity's value to the tag's.
_FACTORS: Mapping[tuple[str, str], float] = {
    ("kW", "W"): 1000.0,
    ("kvar", "var"): 1000.0,
    ("kVA", "VA"): 1000.0,
    ("kWh", "Wh"): 1000.0,
    ("kWh", "MWh"): 0.001,
    ("kW", "MW"): 0.001,
}
#: Quantities of each model kind (machines other than drives: MACHINE_QUANTITIES).
_QUANTITIES: Mapping[str, Mapping[str, Quantity]] = {
    "power_meter": METER_QUANTITIES,
    "drive": DRIVE_QUANTITIES,
}
_INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})
#: Realistic register contents at the start: a meter that has counted for a while.
_INITIAL_ENERGY_KWH = 12_345.67
_EXPORT_ENERGY_KWH = 1.25


def load_bundled(name: str, user_dir: Path | None = None) -> DeviceTemplate:
    """The valid template ``name``; :class:`ProfileError` with its problems if not."""
    known = library(user_dir)
    path = known.get(name)
    if path is None:
        raise ProfileError(unknown_template(name, known))
    loaded = load_template(path, name, describe_error)
    if loaded.model is None:
        raise ProfileError("\n".join(loaded.problems))
    return loaded.model


def factor(quantity: Quantity, tag_unit: str) -> float:
    """The factor from a quantity's value to the tag's unit; ProfileError if they differ."""
    if quantity.unit == tag_unit:
        return 1.0
    found = _FACTORS.get((quantity.unit, tag_unit))
    if found is None:
        raise ProfileError(f"a {quantity.unit or 'unitless'} quantity cannot serve {tag_unit!r}")
    return found


def template_unit(template: DeviceTemplate, unit_id: int = 1, name: str = UNIT_NAME) -> Unit:
    """The simulator unit serving ``template``'s register map."""
    model = _model_params(template)
    quantities = _QUANTITIES.get(model["kind"], MACHINE_QUANTITIES)
    order = template.defaults.byte_order or "ABCD"
    points = [_point(tag, quantities, order, template) for _, tag in template.tags()]
    return Unit.model_validate({"unit_id": unit_id, "name": name, "model": model, "points": points})


def template_profile(template: DeviceTemplate, port: int = 0, unit_id: int = 1) -> Profile:
    """A profile with one TCP server on 127.0.0.1:``port`` serving the template."""
    unit = template_unit(template, unit_id)
    return Profile.model_validate(
        {
            "name": template.template,
            "description": f"{template.title}, from its template",
            "servers": [{"name": SERVER_NAME, "transport": "tcp", "port": port, "units": [unit]}],
        }
    )


def state_of(template: DeviceTemplate, label: str) -> str:
    """The machine state (off, idle, run, fault) an enum label of the state tag means."""
    role = template.roles.machine
    if role is None:
        raise ProfileError(f"template {template.template!r} has no machine role")
    return role.state.map.get(label, label)


def _model_params(template: DeviceTemplate) -> dict[str, Any]:
    given = template.simulator.get("model")
    params: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
    if "kind" not in params:
        if template.roles.meter is None:
            raise ProfileError(f"template {template.template!r}: say simulator.model.kind")
        params["kind"] = "power_meter"
    if params["kind"] == "power_meter":
        resolution = _counter_resolution_kwh(template)
        params.setdefault("counter_resolution_kwh", resolution)
        params.setdefault("initial_counter", round(_INITIAL_ENERGY_KWH / resolution))
        params.setdefault("export_energy_kwh", _EXPORT_ENERGY_KWH)
    return params


def _counter_resolution_kwh(template: DeviceTemplate) -> float:
    """kWh per count of the template's integer energy counter (0.01 for a float one)."""
    meter = template.roles.meter
    if meter is None or meter.counter is None:
        return 0.01
    tag = next(t for _, t in template.tags() if t.name == meter.counter.tag)
    if tag.type not in _INTEGER_TYPES:
        return 0.01
    per_kwh = {"Wh": 1000.0, "kWh": 1.0, "MWh": 0.001}[meter.counter.unit]
    return tag.scale / per_kwh


def _point(
    tag: TemplateTag, quantities: Mapping[str, Quantity], order: str, template: DeviceTemplate
) -> dict[str, Any]:
    if tag.quantity is None:
        raise ProfileError(f"tag {tag.name!r}: say which simulator quantity serves it")
    quantity = quantities.get(tag.quantity)
    if quantity is None:
        raise ProfileError(f"tag {tag.name!r}: no simulator quantity {tag.quantity!r}")
    scale = factor(quantity, tag.unit)
    point: dict[str, Any] = {
        "name": tag.name,
        "table": tag.table,
        "address": tag.address,
        "type": tag.type,
        "byte_order": tag.byte_order or order,
        "scale": tag.scale / scale,
        "offset": tag.offset / scale,
        "quantity": tag.quantity,
        "unit": tag.unit,
    }
    if tag.length is not None:
        point["length"] = tag.length
    if tag.enum is not None:
        point["codes"] = _codes(tag, template)
    return point


def _codes(tag: TemplateTag, template: DeviceTemplate) -> dict[int, int]:
    """Model state -> the device's code for it: the first code whose label means it."""
    codes: dict[int, int] = {}
    for code, label in (tag.enum or {}).items():
        state = state_of(template, label)
        if state in STATE_NAMES:
            codes.setdefault(int(MachineState[state.upper()]), code)
    return codes

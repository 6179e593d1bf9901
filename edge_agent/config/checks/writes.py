"""Cross-field rules of the write policy (``write:`` blocks, ``methods:``), each finding
tied to the path it is about.

Errors: a write block on a table Modbus cannot write (input registers, discrete
inputs); a number tag without the range a command may set (deny by default); bounds
that do not suit the tag's type (``min`` on an enum, labels an enum does not have,
``allowed: [yes]`` on a number); a condition on a tag the device does not have, or
with values that tag cannot show; a method named like a tag.

Warnings (:func:`writes_warnings`): a channel nothing can arrive on yet (``mqtt`` with
no MQTT sink taking commands, ``sparkplug`` with no Sparkplug sink, ``console`` with no
console user allowed to write). A plant file is often written in steps, the write
policy before the sink that will carry the commands: the tag is still safe (nothing
reaches it), so ``check`` says so and the file loads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from edge_agent.config.catalog import INTEGER_BITS, TagInfo, write_kind
from edge_agent.config.checks.common import Finding, Loc
from edge_agent.config.checks.opcua_writes import opcua_write_problems
from edge_agent.config.modbus import ModbusDeviceConfig
from edge_agent.config.mqtt import MqttSinkConfig
from edge_agent.config.opcua import OpcUaDeviceConfig, OpcUaMethod
from edge_agent.config.service import ServiceConfig
from edge_agent.config.writes import AllowedValue, WriteCondition, WritePolicy

_READ_ONLY = {
    "input": "input registers are read-only in Modbus: a write: block needs table: holding or coil",
    "discrete_input": "discrete inputs are read-only in Modbus: a write: block needs "
    "table: holding or coil",
}


def check_writes(index: int, device: Any) -> list[Finding]:
    """Every write rule of one valid device (Modbus or OPC UA)."""
    if not isinstance(device, ModbusDeviceConfig | OpcUaDeviceConfig):
        return []
    base: Loc = ("devices", index)
    tags = device.describe().tags
    found: list[Finding] = []
    for path, tag in _tags(base, device):
        policy = tag.write
        if policy is None:
            continue
        where = (*path, "write")
        if isinstance(device, ModbusDeviceConfig) and tag.table in _READ_ONLY:
            found.append((where, _READ_ONLY[tag.table]))
            continue
        info = tags.get(tag.name)
        if info is None:
            continue
        opcua = isinstance(device, OpcUaDeviceConfig)
        found += [((*where, key), m) for key, m in _policy_rules(policy, info, opcua)]
        if policy.only_when is not None:
            found += [
                ((*where, "only_when", key), m)
                for key, m in _condition_rules(policy.only_when, tags)
            ]
    if isinstance(device, OpcUaDeviceConfig):
        found += [((*base, *path), message) for path, message in opcua_write_problems(device)]
        found += _method_findings(base, device.methods, tags)
    return found


def _tags(base: Loc, device: ModbusDeviceConfig | OpcUaDeviceConfig) -> Iterator[tuple[Loc, Any]]:
    groups: Sequence[Any] = device.poll_groups
    for g, group in enumerate(groups):
        for t, tag in enumerate(group.tags):
            yield (*base, "poll_groups", g, "tags", t), tag


def _kind(info: TagInfo) -> str:
    return write_kind(info.enum, info.value_type)


def _policy_rules(policy: WritePolicy, info: TagInfo, opcua: bool) -> Iterator[tuple[str, str]]:
    kind = _kind(info)
    name = info.name
    if kind in ("enum", "bool", "string"):
        what = {"enum": "an enum", "bool": "a bool", "string": "a string"}[kind]
        hint = {
            "enum": "list the labels a command may set under allowed",
            "bool": "list true or false under allowed to allow only one",
            "string": "list the texts a command may set under allowed",
        }[kind]
        for key in ("min", "max", "step"):
            if getattr(policy, key) is not None:
                yield key, f"{key} applies to number tags; {name} is {what}: {hint}"
    elif kind == "number" and (policy.min is None or policy.max is None):
        missing = " and ".join(k for k in ("min", "max") if getattr(policy, k) is None)
        yield (
            "min" if policy.min is None else "max",
            f"a number tag's write: block needs min and max (missing: {missing}): the "
            "range a command may set is never open-ended",
        )
    elif (
        kind == "any"
        and opcua
        and policy.allowed is None
        and (policy.min is None or policy.max is None)
    ):
        yield (
            "min" if policy.min is None else "max",
            f"{name}'s type is the server's: its write: block needs min and max (a "
            "number) or allowed (the values a command may set)",
        )
    if kind == "number" and not opcua:
        yield from _register_rules(policy, info)
    if policy.allowed is not None:
        for problem in _allowed_problems(policy.allowed, info, kind):
            yield "allowed", problem


def _register_rules(policy: WritePolicy, info: TagInfo) -> Iterator[tuple[str, str]]:
    """What an integer register can hold, through its scale and offset: a range beyond
    it, or a step that is not a whole number of its counts, allows values no command
    could ever write (each would be refused at the device's door, not here)."""
    bits = INTEGER_BITS.get(info.value_type or "")
    if not bits:
        return
    signed = (info.value_type or "").startswith("int")
    low_raw, high_raw = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    )
    scale, offset = info.scale, info.offset
    ends = sorted((low_raw * scale + offset, high_raw * scale + offset))
    held = f"a {info.value_type}" + (f" x {scale:g}" if scale != 1 else "")
    held += (f" + {offset:g}" if offset > 0 else f" - {-offset:g}") if offset else ""
    span = f"{_number(ends[0])} to {_number(ends[1])}"
    # The ends are products in floating point: a bound written as the exact decimal end
    # may land a step of rounding beyond it, and is still what the register holds.
    slack = 1e-9 * max(1.0, abs(ends[0]), abs(ends[1]))
    if policy.min is not None and policy.min < ends[0] - slack:
        yield "min", f"min {policy.min:g} is below what {held} can hold ({span})"
    if policy.max is not None and policy.max > ends[1] + slack:
        yield "max", f"max {policy.max:g} is above what {held} can hold ({span})"
    if policy.step is not None:
        counts = policy.step / abs(scale)
        if abs(counts - round(counts)) > 1e-9 * max(1.0, abs(counts)) or round(counts) == 0:
            yield (
                "step",
                f"step {policy.step:g} is not a whole number of {info.name}'s counts of "
                f"{abs(scale):g}: values on the step could not be written exactly",
            )


def _number(value: float) -> str:
    """A bound for people: whole numbers without a decimal point, the rest as :g."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _allowed_problems(allowed: Sequence[AllowedValue], info: TagInfo, kind: str) -> Iterator[str]:
    if kind == "enum":
        labels = list((info.enum or {}).values())
        for value in allowed:
            if not isinstance(value, str) or value not in labels:
                yield (
                    f"{_show(value)} is not a label of {info.name} (its labels: "
                    f"{', '.join(labels)}){_yaml_hint(value)}"
                )
    elif kind == "bool":
        for value in allowed:
            if not isinstance(value, bool):
                yield f"{info.name} is a bool: allowed takes true or false, not {_show(value)}"
    elif kind == "string":
        for value in allowed:
            if not isinstance(value, str):
                yield f"{info.name} is a string: allowed takes texts, not {_show(value)}"
    elif kind == "number":
        for value in allowed:
            if isinstance(value, bool) or not isinstance(value, int | float):
                yield (
                    f"{info.name} is a number: allowed takes numbers, not {_show(value)}"
                    f"{_yaml_hint(value)}"
                )


def _condition_rules(
    condition: WriteCondition, tags: Mapping[str, TagInfo]
) -> Iterator[tuple[str, str]]:
    info = tags.get(condition.tag)
    if info is None:
        yield "tag", f"this device has no tag {condition.tag!r}"
        return
    kind = _kind(info)
    for value in condition.values:
        if kind == "enum" and value not in (info.enum or {}).values():
            labels = ", ".join((info.enum or {}).values())
            yield (
                "values",
                f"{condition.tag} never shows {_show(value)} (its labels: {labels})"
                f"{_yaml_hint(value)}",
            )
        elif kind == "bool" and not isinstance(value, bool):
            yield "values", f"{condition.tag} is a bool: it shows true or false, not {_show(value)}"
        elif kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            yield "values", f"{condition.tag} is a number: it never shows {_show(value)}"


def _method_findings(
    base: Loc, methods: Sequence[OpcUaMethod], tags: Mapping[str, TagInfo]
) -> list[Finding]:
    found: list[Finding] = []
    seen: set[str] = set()
    for m, method in enumerate(methods):
        path = (*base, "methods", m)
        if method.name in tags:
            found.append(
                (
                    (*path, "name"),
                    f"method name {method.name!r} is also a tag of this device: a command "
                    "names one or the other, so give the method a name of its own",
                )
            )
        if method.name in seen:
            found.append(((*path, "name"), f"method {method.name!r} is listed twice"))
        seen.add(method.name)
        names: set[str] = set()
        for a, argument in enumerate(method.arguments):
            where = (*path, "arguments", a)
            if argument.name in names:
                found.append(((*where, "name"), f"argument {argument.name!r} is listed twice"))
            names.add(argument.name)
            low, high = argument.min, argument.max
            if low is not None and high is not None and low > high:
                found.append(((*where, "min"), f"min {low:g} is above max {high:g}"))
            if argument.allowed is None and (low is None or high is None):
                found.append(
                    (
                        (*where, "min" if low is None else "max"),
                        f"argument {argument.name}'s type is the server's: it needs min and "
                        "max (a number) or allowed (the values a command may set): the range "
                        "a command may set is never open-ended",
                    )
                )
        if method.only_when is not None:
            found += [
                ((*path, "only_when", key), message)
                for key, message in _condition_rules(method.only_when, tags)
            ]
    return found


# -- channels nothing can arrive on (warnings)


def writes_warnings(
    devices: Sequence[tuple[int, Any]],
    sinks: Sequence[tuple[int, Any]],
    service: ServiceConfig | None,
) -> list[Finding]:
    """Once per channel, at its first use: a carrier the file has that does not carry
    commands (MQTT sinks, none with ``commands: true``; a console, no user with
    ``writes: true``). A file with no MQTT sink or no console at all says nothing about
    them: the carrier may come from elsewhere (``edge-agent demo --mqtt`` adds a sink)
    or later, and nothing reaches the tag meanwhile. Sparkplug sinks always carry DCMDs.
    """
    mqtt_sinks = [s for _, s in sinks if isinstance(s, MqttSinkConfig)]
    console = None if service is None else service.console
    carriers = {
        "mqtt": not mqtt_sinks or any(s.commands for s in mqtt_sinks),
        "sparkplug": True,
        # Unknown (the service section is invalid): say nothing about the console.
        "console": console is None or any(u.writes for u in console.users),
        "cli": True,
    }
    why = {
        "mqtt": "no MQTT sink takes commands (add commands: true to the type: mqtt sink "
        "that should)",
        "console": "no console user may write (writes: true under service.console.users)",
    }
    uses: dict[str, list[Loc]] = {}
    for index, device in devices:
        if not isinstance(device, ModbusDeviceConfig | OpcUaDeviceConfig):
            continue
        base: Loc = ("devices", index)
        for path, tag in _tags(base, device):
            if tag.write is not None:
                for channel in tag.write.channels:
                    uses.setdefault(channel, []).append((*path, "write", "channels"))
        if isinstance(device, OpcUaDeviceConfig):
            for m, method in enumerate(device.methods):
                for channel in method.channels:
                    uses.setdefault(channel, []).append((*base, "methods", m, "channels"))
    found: list[Finding] = []
    for channel, paths in uses.items():
        if carriers.get(channel, True):
            continue
        others = len(paths) - 1
        more = f" (also listed by {others} more tag(s) or method(s))" if others else ""
        found.append(
            (
                paths[0],
                f"{channel}: {why[channel]}: no command can arrive on this channel yet{more}",
            )
        )
    return found


def _show(value: AllowedValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return f"{value:g}"


def _yaml_hint(value: AllowedValue) -> str:
    """An enum label YAML read as a boolean (``off``, ``on``, ``yes``, ``no``)."""
    if isinstance(value, bool):
        return ' (unquoted yes/no/on/off are booleans in YAML: write "off" in quotes)'
    return ""

"""The OPC UA driver's method calls: only the methods the device's ``methods:`` lists.

Each argument is typed by the method itself: its InputArguments property (read once
per session) gives every argument's DataType and ValueRank, and the value is encoded
exactly as a write's (:mod:`drivers.opcua.encode`: range, whole numbers, float32,
enum labels). The arguments are named and ordered by the config; a missing or extra
one is refused before anything is sent. The Call goes out once on the device's
session: a bad status (the call's or an input argument's) is :class:`WriteFailed`,
no answer :class:`WriteOutcomeUnknown`; the output arguments come back converted as
a read converts values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from asyncua import ua
from asyncua.ua import uaprotocol_auto

from drivers.opcua.convert import convert_value
from drivers.opcua.encode import encode
from drivers.opcua.nodeinfo import BaseType
from drivers.opcua.nodes import browse_path, enum_labels, resolve
from drivers.opcua.quality import classify, status_name
from drivers.opcua.session import Session
from drivers.opcua.writes import FactCache, live_session, outcome_of, send_once, status_words
from edge_agent.config.opcua import OpcUaDeviceConfig, OpcUaMethod, parse_node_address
from edge_agent.driver import WriteFailed, WriteOutcomeUnknown, WriteRefused
from edge_agent.model import Quality

Value = bool | int | float | str
_CALL_RESULT_BAD = 0x8000_0000
#: asyncua's ``ua.Argument`` is a hand-written class; the InputArguments a server sends
#: decode as the generated one of the same name.
_ARGUMENT_CLASSES = (ua.Argument, uaprotocol_auto.Argument)


@dataclass(frozen=True, slots=True)
class _Argument:
    name: str
    base: BaseType
    value_rank: int
    enum: Mapping[int, str] | None


@dataclass(frozen=True, slots=True)
class _Target:
    """A configured method as found on the current session."""

    object_id: ua.NodeId
    method_id: ua.NodeId
    arguments: tuple[_Argument, ...]


class MethodCalls:
    """Calls of the configured methods over the device's current session."""

    def __init__(self, config: OpcUaDeviceConfig, session: Callable[[], Session | None]) -> None:
        self.config = config
        self._session = session
        self._methods = {m.name: m for m in config.methods}
        self._cache = FactCache()
        self._targets: dict[str, _Target] = {}
        self._targets_of: Session | None = None

    async def call(self, method: str, args: Mapping[str, Value]) -> tuple[Value, ...]:
        configured = self._methods.get(method)
        if configured is None:
            known = ", ".join(self._methods) or "none are configured"
            raise WriteRefused(f"device {self.config.name} has no method {method} ({known})")
        names = [a.name for a in configured.arguments]
        missing = [n for n in names if n not in args]
        extra = sorted(set(args) - set(names))
        if missing or extra:
            words = []
            if missing:
                words.append(f"missing {', '.join(missing)}")
            if extra:
                words.append(f"not an argument of it: {', '.join(extra)}")
            raise WriteRefused(f"method {method} takes ({', '.join(names)}): {'; '.join(words)}")
        session = live_session(self._session())
        target = await self._target(session, configured)
        variants = []
        for name, argument in zip(names, target.arguments, strict=True):
            what = f"argument {name} of method {method}"
            if argument.base.vtype is None:
                raise WriteRefused(f"{what} cannot be sent: {argument.base.reason}")
            if argument.value_rank >= 0:
                raise WriteRefused(f"{what} is an array: array arguments are not supported")
            variants.append(encode(args[name], argument.base.vtype, argument.enum, what).variant)
        request = ua.CallMethodRequest(
            ObjectId=target.object_id, MethodId=target.method_id, InputArguments=variants
        )
        what = f"call of method {method}"
        results = await send_once(
            lambda: session.client.uaclient.call([request]), self.config.timeout, what
        )
        if len(results) != 1:
            raise WriteOutcomeUnknown(
                f"the server answered the {what} with {len(results)} results instead of one"
            )
        result = results[0]
        code = result.StatusCode.value if result.StatusCode is not None else 0
        bad_inputs = [
            f"{name}: {status_name(status.value)}"
            for name, status in zip(names, result.InputArgumentResults or [], strict=False)
            if status.value & _CALL_RESULT_BAD
        ]
        if bad_inputs:
            overall = status_words(code) if code & _CALL_RESULT_BAD else "bad arguments"
            raise WriteFailed(
                f"the server refused the {what}: {overall} (arguments refused: "
                f"{'; '.join(bad_inputs)})"
            )
        outcome_of(code, what)
        return tuple(_output(v) for v in result.OutputArguments or [])

    async def _target(self, session: Session, method: OpcUaMethod) -> _Target:
        if self._targets_of is not session:  # a new session: the server may have changed
            self._targets_of = session
            self._targets.clear()
        hit = self._targets.get(method.name)
        if hit is not None:
            return hit
        cache = self._cache.on(session)
        addresses = [parse_node_address(method.object), parse_node_address(method.method)]
        resolution = await resolve(session, addresses, [None, None])
        object_id, method_id = resolution.node_ids
        if object_id is None or method_id is None:
            which, reason = (
                (method.object, resolution.reasons[0])
                if object_id is None
                else (method.method, resolution.reasons[1])
            )
            raise WriteRefused(f"method {method.name}: {which} is not on the server ({reason})")
        await self._executable(session, method.name, method_id)
        arguments = await self._arguments(session, method, method_id, cache)
        target = _Target(object_id, method_id, arguments)
        self._targets[method.name] = target
        return target

    async def _executable(self, session: Session, name: str, method_id: ua.NodeId) -> None:
        (user,) = await session.read(
            [ua.ReadValueId(NodeId=method_id, AttributeId=ua.AttributeIds.UserExecutable)]
        )
        status = user.StatusCode.value if user.StatusCode is not None else 0
        executable = user.Value.Value if user.Value is not None else None
        if classify(status)[0] is Quality.GOOD and executable is False:
            raise WriteRefused(
                f"method {name}: the server does not let the agent's user call it "
                "(UserExecutable is false)"
            )

    async def _arguments(
        self, session: Session, method: OpcUaMethod, method_id: ua.NodeId, cache: FactCache
    ) -> tuple[_Argument, ...]:
        (found,) = await session.translate(
            [browse_path(method_id, [(0, "InputArguments")], ua.ObjectIds.HasProperty)]
        )
        declared: list[uaprotocol_auto.Argument] = []
        if found.StatusCode.is_good() and found.Targets:
            target = found.Targets[0].TargetId
            property_id = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
            (data,) = await session.read(
                [ua.ReadValueId(NodeId=property_id, AttributeId=ua.AttributeIds.Value)]
            )
            raw = data.Value.Value if data.Value is not None else None
            if isinstance(raw, list):
                declared = [a for a in raw if isinstance(a, _ARGUMENT_CLASSES)]
        names = [a.name for a in method.arguments]
        if len(declared) != len(names):
            theirs = ", ".join(a.Name or "?" for a in declared) or "none"
            raise WriteRefused(
                f"method {method.name} takes {len(declared)} arguments on the server "
                f"({theirs}); the config lists {len(names)} ({', '.join(names) or 'none'})"
            )
        out = []
        for name, argument in zip(names, declared, strict=True):
            base = await cache.base(argument.DataType)
            enum = None
            if base.enumeration:
                enum = (await enum_labels(session, [argument.DataType])).get(argument.DataType)
            out.append(_Argument(name, base, int(argument.ValueRank), enum))
        return tuple(out)


def _output(variant: ua.Variant) -> Value:
    """An output argument as a read would show it; an array as JSON text."""
    value, quality, reason = convert_value(variant, None)
    if isinstance(value, list):
        return json.dumps([item for item, _, _ in value])
    if value is None:
        return f"({reason or quality.name.lower()})"
    return value


__all__ = ["MethodCalls"]

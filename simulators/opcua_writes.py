"""Writes and method calls to the OPC UA simulator, vetted as a careful server does.

Only the variables a profile lists under a unit's ``writable:`` carry AccessLevel
CurrentRead|CurrentWrite; a client's write of their Value attribute is answered

* Bad_TypeMismatch unless the Variant has exactly the node's type (a Double node
  takes a Double, not a Float or an Int32; the mode node a UInt16), scalar;
* Bad_OutOfRange outside the variable's ``min`` / ``max`` or for a value the model
  does not take (a mode that is not 0 or 1);
* Good otherwise: the value is stored and the model follows from the next step
  (:meth:`simulators.machine.Machine.write`), as over Modbus.

A write to any other variable of the simulator answers Bad_NotWritable (asyncua alone
would answer Bad_UserAccessDenied, which tells a client the wrong thing).

``AcknowledgeAlarm(code: UInt16)`` on a machine (``methods: true``) ends the active
fault at the next step when ``code`` is the active alarm; otherwise the call answers
Bad_InvalidState (no alarm) or Bad_InvalidArgument (another alarm is active, or the
argument is not one UInt16).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from asyncua import ua

from simulators.equipment import Simulation
from simulators.machine import SettingError
from simulators.profile import WritableVariable

METHOD_NAME = "AcknowledgeAlarm"


@dataclass(frozen=True)
class WritableNode:
    unit: str
    quantity: str
    variant: ua.VariantType
    spec: WritableVariable


@dataclass
class OpcUaWrites:
    """The simulator's write and call rules (the session asks :meth:`vet` per item)."""

    simulation: Simulation
    clock: Callable[[], float]
    writable: dict[ua.NodeId, WritableNode] = field(default_factory=dict)
    read_only: set[ua.NodeId] = field(default_factory=set)
    applied: int = 0
    refused: int = 0

    def vet(self, item: ua.WriteValue) -> ua.StatusCode | None:
        """A refusal for ``item``, or None to let asyncua store it."""
        if item.AttributeId != ua.AttributeIds.Value:
            return None  # asyncua refuses attribute writes to users
        target = self.writable.get(item.NodeId)
        if target is None:
            if item.NodeId in self.read_only:
                return self._refuse(ua.StatusCodes.BadNotWritable)
            return None
        variant = item.Value.Value if item.Value is not None else None
        if (
            variant is None
            or variant.VariantType != target.variant
            or isinstance(variant.Value, list)
        ):
            return self._refuse(ua.StatusCodes.BadTypeMismatch)
        value = variant.Value
        spec = target.spec
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self._refuse(ua.StatusCodes.BadTypeMismatch)
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            return self._refuse(ua.StatusCodes.BadOutOfRange)
        try:
            self.simulation.machine(target.unit).check(target.quantity, value)
        except SettingError:
            return self._refuse(ua.StatusCodes.BadOutOfRange)
        return None

    def apply(self, item: ua.WriteValue) -> None:
        """Hand a stored write to the model (it happens at the clock's now)."""
        target = self.writable.get(item.NodeId)
        if target is None or item.AttributeId != ua.AttributeIds.Value:
            return
        self.simulation.advance_to(self.clock())
        self.simulation.machine(target.unit).write(target.quantity, item.Value.Value.Value)
        self.applied += 1

    def _refuse(self, code: int) -> ua.StatusCode:
        self.refused += 1
        return ua.StatusCode(code)

    def acknowledge(self, unit: str) -> Callable[..., object]:
        """The AcknowledgeAlarm method of ``unit`` (asyncua calls it with Variants)."""

        async def call(parent: ua.NodeId, *args: ua.Variant) -> object:
            del parent
            if len(args) != 1:
                status = ua.StatusCodes.BadArgumentsMissing
                if args:
                    status = ua.StatusCodes.BadTooManyArguments
                return ua.StatusCode(status)
            (code,) = args
            if code.VariantType != ua.VariantType.UInt16 or isinstance(code.Value, list):
                return ua.CallMethodResult(
                    StatusCode=ua.StatusCode(ua.StatusCodes.BadInvalidArgument),
                    InputArgumentResults=[ua.StatusCode(ua.StatusCodes.BadTypeMismatch)],
                )
            self.simulation.advance_to(self.clock())
            machine = self.simulation.machine(unit)
            try:
                machine.acknowledge_alarm(int(code.Value))
            except SettingError as exc:
                status = ua.StatusCodes.BadInvalidArgument
                if str(exc).startswith("no alarm"):
                    status = ua.StatusCodes.BadInvalidState
                return ua.StatusCode(status)
            return []

        return call


def method_arguments() -> Iterable[ua.Argument]:
    """The one input argument of AcknowledgeAlarm."""
    argument = ua.Argument()
    argument.Name = "code"
    argument.DataType = ua.NodeId(ua.ObjectIds.UInt16)
    argument.ValueRank = ua.ValueRank.Scalar
    argument.Description = ua.LocalizedText("the alarm code the machine shows (alarm_code)")
    return [argument]

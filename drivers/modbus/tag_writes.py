"""A Modbus device's writes (:class:`edge_agent.driver.Writes`): encode, send once, read a tag.

The driver writes what it is asked; the policy (which tags, which values, who, how
often) is the gate's. What is decided here:

* which request carries a value: one holding register by function 6, several by 16
  (always 16 with ``writes: {functions: multiple}``); a coil by 5 (15 with
  ``multiple``); a bit inside a holding register by function 22 (mask write) when the
  device's ``writes.mask_write`` is true, otherwise by reading the register and writing
  it back with the bit changed, both under the channel's lock (see
  :meth:`~drivers.modbus.channel.ModbusChannel.read_modify_write`). A value is always
  one request: never split (the device would hold half a value in between).
* what came of it: the device's echo -> done; an exception reply ->
  :class:`~edge_agent.driver.WriteFailed` with the code and its meaning, except the
  codes that do not prove the value was refused (4, 5, 11: :data:`UNDECIDED_CODES`);
  those, and sent but no valid answer -> :class:`~edge_agent.driver.WriteOutcomeUnknown`,
  never retried;
  not sent (not connected) -> DriverError.
* ``read_tag``: exactly the tag's registers (or bit), now, decoded by the decoder a
  poll uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.modbus.channel import ModbusChannel
from drivers.modbus.encode import NotRepresentable, WriteValue, decode_tag, encode
from drivers.modbus.frames_write import (
    MAX_REGISTERS,
    Write,
    bit_masks,
    mask_write,
    write_coil,
    write_coils,
    write_register,
    write_registers,
)
from drivers.modbus.replies import (
    ModbusExceptionResponse,
    ReadBeforeWriteRefused,
    WriteUnconfirmed,
    exception_meaning,
)
from edge_agent.config import ModbusDeviceConfig, ModbusRtu, ModbusTag
from edge_agent.driver import (
    PreparedWrite,
    TagReading,
    WriteFailed,
    WriteOutcomeUnknown,
    WriteRefused,
)
from edge_agent.model import Quality

#: Gateway path unavailable / gateway target failed to respond: the unit is unreachable.
UNREACHABLE_CODES = frozenset({10, 11})
#: Exception answers to a write that do not prove it was not taken: 4 server device
#: failure (it may have acted in part), 5 acknowledge (taken, still being carried out),
#: 11 gateway target failed to respond (the gateway sent it on; the answer was lost).
#: The outcome is unknown and the read-back decides; every other code is a refusal.
UNDECIDED_CODES = frozenset({4, 5, 11})
#: What a refusal most often means on site, after the code and its meaning.
REFUSAL_HINTS = {
    1: ": the device does not take this function code (writes: {functions: multiple} "
    "sends 15/16 only; mask_write: false avoids 22)",
    2: ": the device does not let this address be written (read-only, or another address)",
    3: ": the device's own limits may be narrower than the write: block allows",
    6: ": the device is busy; send it again later",
    10: ": the gateway has no path to the unit (its routing table or wiring)",
}


@dataclass(frozen=True, slots=True)
class BitChange:
    """Bits of one holding register changed by reading it and writing it back."""

    address: int
    and_mask: int
    or_mask: int
    multiple: bool


@dataclass(frozen=True, slots=True)
class Payload:
    """What :meth:`TagWrites.write` sends: one request, for one device."""

    device: str
    tag: str
    request: Write | BitChange


class TagWrites:
    """The writes of one device through its (shared) channel."""

    def __init__(self, config: ModbusDeviceConfig, channel: ModbusChannel) -> None:
        self.config = config
        self.channel = channel
        # Tag and code tag by name, made at the first write: most devices are never
        # written, and at 100,000 tags the maps would hold 2.6 MB for nothing.
        self._by_name: tuple[dict[str, ModbusTag], dict[str, ModbusTag]] | None = None

    def _names(self) -> tuple[dict[str, ModbusTag], dict[str, ModbusTag]]:
        """(tag name -> tag, code tag name -> its enum tag), e.g. ``state_code -> state``."""
        if self._by_name is None:
            tags: dict[str, ModbusTag] = {}
            codes: dict[str, ModbusTag] = {}
            for group in self.config.poll_groups:
                for tag in group.tags:
                    tags[tag.name] = tag
                    if tag.code_name is not None:
                        codes[tag.code_name] = tag
            self._by_name = (tags, codes)
        return self._by_name

    def prepare(self, name: str, value: WriteValue) -> PreparedWrite:
        tags, codes = self._names()
        tag = tags.get(name)
        if tag is None:
            if name in codes:
                raise WriteRefused(
                    f"{name} is the raw code of tag {codes[name].name}: write "
                    f"{codes[name].name} (a label, or a code) instead"
                )
            raise WriteRefused(f"device {self.config.name} has no tag {name}")
        if tag.table in ("input", "discrete_input"):
            kind = "an input register" if tag.table == "input" else "a discrete input"
            raise WriteRefused(f"tag {name} is {kind}: Modbus cannot write it")
        if isinstance(self.config.connection, ModbusRtu) and self.config.unit_id == 0:
            raise WriteRefused(
                f"device {self.config.name} has unit id 0, the broadcast address of a serial "
                "line: no device answers it, so a write could never be confirmed"
            )
        try:
            encoded = encode(tag, value, self.config.byte_order)
        except NotRepresentable as exc:
            raise WriteRefused(str(exc)) from None
        request, sent = self._request(tag, encoded.registers, encoded.bit)
        return PreparedWrite(
            tag=name,
            requested=value,
            expected=encoded.expected,
            sent=sent,
            payload=Payload(self.config.name, name, request),
        )

    def _request(
        self, tag: ModbusTag, registers: tuple[int, ...], bit: bool | None
    ) -> tuple[Write | BitChange, str]:
        unit, address = self.config.unit_id, tag.address
        single = self.config.writes.functions == "single"
        if bit is not None and tag.table == "coil":
            coil = write_coil(unit, address, bit) if single else write_coils(unit, address, [bit])
            return coil, f"coil {address} <- {int(bit)} (function {coil.function})"
        if bit is not None:
            and_mask, or_mask = bit_masks(tag.bit or 0, bit)
            where = f"holding {address} bit {tag.bit} <- {int(bit)}"
            if self.config.writes.mask_write:
                return mask_write(unit, address, and_mask, or_mask), f"{where} (function 22)"
            function = 6 if single else 16
            change = BitChange(address, and_mask, or_mask, multiple=not single)
            return change, f"{where} (read-modify-write: function 3, then {function})"
        if len(registers) > MAX_REGISTERS:
            raise WriteRefused(
                f"tag {tag.name} spans {len(registers)} registers: one write request holds "
                f"at most {MAX_REGISTERS}, and a value is never split over two"
            )
        if len(registers) == 1 and single:
            return (
                write_register(unit, address, registers[0]),
                f"holding {address} <- 0x{registers[0]:04X} (function 6)",
            )
        last = address + len(registers) - 1
        span = f"{address}" if last == address else f"{address}-{last}"
        words = " ".join(f"{word:04X}" for word in registers)
        return write_registers(unit, address, registers), f"holding {span} <- {words} (function 16)"

    async def write(self, prepared: PreparedWrite) -> None:
        payload = prepared.payload
        if not isinstance(payload, Payload) or payload.device != self.config.name:
            raise WriteRefused(f"not a write prepared for device {self.config.name}")
        request = payload.request
        what = f"{self.config.name} {payload.tag} ({prepared.sent})"
        try:
            if isinstance(request, BitChange):
                await self.channel.read_modify_write(
                    self.config.unit_id,
                    request.address,
                    request.and_mask,
                    request.or_mask,
                    multiple=request.multiple,
                )
            else:
                await self.channel.write(request)
        except ReadBeforeWriteRefused as exc:
            raise WriteFailed(
                f"exception code {exc.code} ({exception_meaning(exc.code)}) to reading the "
                f"register before changing its bit ({prepared.sent}): nothing was written"
            ) from None
        except ModbusExceptionResponse as exc:
            answer = f"exception code {exc.code} ({exception_meaning(exc.code)})"
            if exc.code in UNDECIDED_CODES:
                raise WriteOutcomeUnknown(
                    f"{what}: the answer was {answer}, which does not say the value was not "
                    "taken; the device may or may not hold it"
                ) from None
            hint = REFUSAL_HINTS.get(exc.code, "")
            raise WriteFailed(f"{answer} to {prepared.sent}{hint}") from None
        except WriteUnconfirmed as exc:
            raise WriteOutcomeUnknown(
                f"{what}: sent, but {exc}; the device may or may not have taken it"
            ) from None

    async def read_tag(self, name: str) -> TagReading:
        tags, codes = self._names()
        tag = tags.get(name)
        code = tag is None
        if tag is None:
            tag = codes.get(name)
            if tag is None:
                raise WriteRefused(f"device {self.config.name} has no tag {name}")
        try:
            data = await self.channel.read(
                tag.table, tag.address, tag.register_count, self.config.unit_id
            )
        except ModbusExceptionResponse as exc:
            if exc.code in UNREACHABLE_CODES:
                raise
            return TagReading(None, False, f"{exc.reason} ({exception_meaning(exc.code)})")
        value, quality, reason = decode_tag(tag, data, self.config.byte_order, code=code)
        if quality is Quality.GOOD and value is not None:
            return TagReading(value, True)
        # An unknown enum code keeps its text (UNCERTAIN), never taken as good.
        shown = value if isinstance(value, bool | int | float | str) else None
        return TagReading(shown, False, reason)

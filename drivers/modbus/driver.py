"""ModbusDriver: one Modbus device (unit) read through a shared :class:`ModbusChannel`.

Per poll group: an :class:`~drivers.modbus.planner.AdaptivePlan` decides the reads
(coalesced, learning the device's holes), a :class:`~drivers.modbus.compiler.DecoderCache`
decodes each response block straight into the batch's lists.

Failure policy, per request:

* exception code 2 (ILLEGAL DATA ADDRESS): the plan splits the request and learns the
  hole; tags that are really invalid come out bad with ``exception code 2``;
* other exception codes (busy, device failure...): that request's tags are bad with
  the code as reason, the rest of the group is still read;
* timeout, lost connection, gateway path/target failures (codes 10, 11): the whole
  read fails (:class:`DriverReadError`); a unit that misses one request will miss the
  next, and each miss would cost a full timeout on a connection others share.

Writes (:class:`edge_agent.driver.Writes`) are :mod:`drivers.modbus.tag_writes`'.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drivers.modbus.channel import ModbusChannel, connection_key
from drivers.modbus.codec import codes_follow, fill_bad
from drivers.modbus.compiler import DecoderCache
from drivers.modbus.frames import EXCEPTION_MEANINGS
from drivers.modbus.planner import AdaptivePlan, ReadRequest
from drivers.modbus.replies import ModbusExceptionResponse
from drivers.modbus.tag_writes import UNREACHABLE_CODES, TagWrites
from edge_agent.config import ModbusDeviceConfig, ModbusTag, PollGroup
from edge_agent.driver import GroupSpec, PreparedWrite, TagReading, WriteRefused
from edge_agent.errors import DriverReadError
from edge_agent.model import Quality, SampleBatch, Value, exception_reason

ILLEGAL_DATA_ADDRESS = 2
#: Seconds added to every read budget for scheduling slack.
BUDGET_SLACK = 1.0
#: Tags named in one log line before "and N more".
TAGS_NAMED = 10
#: "exception code 2" -> "exception code 2 (illegal data address)", for the log.
_REASON_MEANINGS = {
    exception_reason(c): f"{exception_reason(c)} ({m})" for c, m in EXCEPTION_MEANINGS.items()
}


@dataclass(slots=True)
class _Group:
    spec: GroupSpec
    tags: Sequence[ModbusTag]
    plan: AdaptivePlan
    decoders: DecoderCache
    #: (enum tag position, its code's position): codes sit after the group's tags.
    codes: tuple[tuple[int, int], ...]


class ModbusDriver:
    def __init__(self, config: ModbusDeviceConfig, channel: ModbusChannel) -> None:
        self.config = config
        self.channel = channel
        channel.users += 1
        channel.pollers += len(config.poll_groups)
        self._groups = {g.name: _compile_group(g, config) for g in config.poll_groups}
        self._closed = False
        #: Per group, each tag's registers as hex (``run --once``); None: not recorded.
        self._raw: dict[str, list[str]] | None = None
        self._writes = TagWrites(config, channel)

    @property
    def device(self) -> str:
        return self.config.name

    @property
    def groups(self) -> Sequence[GroupSpec]:
        return [g.spec for g in self._groups.values()]

    @property
    def connected(self) -> bool:
        return self.channel.connected

    def plan(self, group: str) -> AdaptivePlan:
        return self._groups[group].plan

    async def connect(self) -> None:
        await self.channel.connect()

    async def read(self, group: str) -> tuple[SampleBatch]:
        compiled = self._groups[group]
        names = compiled.spec.names
        count = len(names)
        timestamp_ns = time.time_ns()
        values: list[Value] = [None] * count
        qualities = [Quality.BAD] * count
        reasons = ["not read"] * count
        poll = compiled.plan.poll()
        unit = self.config.unit_id
        raw = self._raw
        shown: list[str] | None = None if raw is None else [""] * count
        for request in poll:
            try:
                data = await self.channel.read(request.table, request.start, request.count, unit)
            except ModbusExceptionResponse as exc:
                if exc.code == ILLEGAL_DATA_ADDRESS:
                    poll.refused(request)
                    continue
                if exc.code in UNREACHABLE_CODES:
                    tags = _where([compiled.tags[p] for p in request.positions])
                    raise ModbusExceptionResponse(exc.code, f"{exc.detail}: {tags}") from None
                fill_bad(request.positions, exc.reason, values, qualities, reasons)
                continue
            poll.accepted(request)
            if shown is not None:
                _keep_raw(shown, compiled.tags, request, data)
            try:
                compiled.decoders[request].decode(data, values, qualities, reasons)
            except DriverReadError as exc:
                fill_bad(request.positions, exc.reason, values, qualities, reasons)
        fill_bad(
            poll.refused_positions,
            exception_reason(ILLEGAL_DATA_ADDRESS),
            values,
            qualities,
            reasons,
        )
        if compiled.codes:  # a failed or refused read left the label bad, and only it
            codes_follow(compiled.codes, values, qualities, reasons)
            if shown is not None:  # a code is decoded from its label's registers
                for label, code in compiled.codes:
                    shown[code] = shown[label]
        if raw is not None and shown is not None:
            raw[group] = shown  # with the batch, in the same step (no await between)
        return (SampleBatch(self.device, group, timestamp_ns, names, values, qualities, reasons),)

    def record_raw(self, on: bool = True) -> None:
        """Keep each tag's registers from every read (see :class:`edge_agent.driver.ShowsRaw`)."""
        if not on:
            self._raw = None
        elif self._raw is None:
            self._raw = {}

    def raw(self, group: str) -> Sequence[str]:
        """Each tag's registers in the last read of ``group``: ``"4366 CCCD"``, a bit ``"1"``."""
        kept = None if self._raw is None else self._raw.get(group)
        return kept if kept is not None else [""] * len(self._groups[group].spec.names)

    def explain(self, batch: SampleBatch) -> str:
        """The bad samples of ``batch`` by reason, with their addresses (for the log)."""
        tags = self._groups[batch.group].tags
        bad: dict[str, list[ModbusTag]] = {}
        # Only the tags themselves: an enum's code (after them) is bad when its label is.
        count = len(tags)
        for tag, quality, reason in zip(
            tags, batch.qualities[:count], batch.reasons[:count], strict=True
        ):
            if quality is not Quality.GOOD:
                bad.setdefault(reason, []).append(tag)
        return "; ".join(
            f"group {batch.group}: {_REASON_MEANINGS.get(reason, reason)}: {_where(refused)}"
            for reason, refused in bad.items()
        )

    def read_budget(self, group: str) -> float:
        """Worst case: learning splits every request (2k-1 reads), and before each of
        them every other poll group on the shared channel may take its turn with one
        request that times out (on a serial line: waiting for a quiet line, then the
        diagnostics echo of a unit in doubt, then the request, each up to a timeout)."""
        plan = self._groups[group].plan
        own = 2 * len(plan.requests) + len(plan.invalid_positions)
        frames = 2 if self.channel.serial else 1  # the echo, then the read
        per_request = self.channel.timeout * (frames + 1 if self.channel.serial else 1)
        per_request += self.channel.inter_frame_delay * frames
        return (own + self.channel.pollers) * per_request + BUDGET_SLACK

    async def prepare(self, tag: str, value: bool | int | float | str) -> PreparedWrite:
        """Encode ``value`` for ``tag`` (:class:`edge_agent.driver.Writes`)."""
        return self._writes.prepare(tag, value)

    async def write(self, prepared: PreparedWrite) -> None:
        """Send it once: WriteFailed, WriteOutcomeUnknown, or DriverError when not sent."""
        await self._writes.write(prepared)

    async def read_tag(self, tag: str) -> TagReading:
        """Read ``tag`` now, decoded as a poll would (an enum tag gives its label)."""
        return await self._writes.read_tag(tag)

    async def call(
        self, method: str, args: Mapping[str, bool | int | float | str]
    ) -> tuple[bool | int | float | str, ...]:
        """Modbus has no methods: refused."""
        raise WriteRefused(
            f"device {self.device} is a Modbus device: it has no method {method} to call"
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.channel.users -= 1
        self.channel.pollers -= len(self.config.poll_groups)
        if self.channel.users == 0:
            await self.channel.close()


def _compile_group(group: PollGroup, config: ModbusDeviceConfig) -> _Group:
    """The group's names are its tags', then the code tag of each enum tag."""
    names = [t.name for t in group.tags]
    codes: dict[int, int] = {}
    for p, tag in enumerate(group.tags):
        if tag.code_name is not None:
            codes[p] = len(names)
            names.append(tag.code_name)
    return _Group(
        spec=GroupSpec(group.name, group.interval, tuple(names)),
        tags=group.tags,
        plan=AdaptivePlan.for_device(group.tags, config),
        decoders=DecoderCache(group.tags, config.byte_order, codes),
        codes=tuple(codes.items()),
    )


def _keep_raw(
    raw: list[str],
    tags: Sequence[ModbusTag],
    request: ReadRequest,
    data: Sequence[int] | Sequence[bool],
) -> None:
    """What each tag of ``request`` is decoded from: its registers in hex, or its bit."""
    for p in request.positions:
        tag = tags[p]
        offset = tag.address - request.start
        if request.reads_bits:
            raw[p] = "1" if data[offset] else "0"
        else:
            words = data[offset : offset + tag.register_count]
            raw[p] = " ".join(f"{int(word):04X}" for word in words)


def _where(tags: Sequence[ModbusTag]) -> str:
    """``holding 40-41 (flow), coil 3 (pump)``: where each tag lives, a few named."""
    parts = []
    for tag in tags[:TAGS_NAMED]:
        last = tag.address + tag.register_count - 1
        span = f"{tag.address}" if last == tag.address else f"{tag.address}-{last}"
        parts.append(f"{tag.table} {span} ({tag.name})")
    more = f" and {len(tags) - TAGS_NAMED} more" if len(tags) > TAGS_NAMED else ""
    return ", ".join(parts) + more


def build_modbus_drivers(devices: Iterable[ModbusDeviceConfig]) -> list[ModbusDriver]:
    """One driver per device; devices on the same gateway or serial bus share a channel.

    A shared channel uses the longest timeout and inter-frame delay of its devices
    (see :mod:`drivers.modbus.channel` for why requests are never cut short).
    """
    devices = list(devices)
    by_key: dict[str, list[ModbusDeviceConfig]] = {}
    for device in devices:
        by_key.setdefault(connection_key(device.connection), []).append(device)
    channels = {
        key: ModbusChannel(
            group[0].connection,
            timeout=max(d.timeout for d in group),
            inter_frame_delay=max(d.inter_frame_delay for d in group),
        )
        for key, group in by_key.items()
    }
    return [ModbusDriver(d, channels[connection_key(d.connection)]) for d in devices]

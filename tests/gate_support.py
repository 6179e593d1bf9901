"""Stand-ins for the gate's unit tests: an honest in-memory writable device, a clock of
our own, an audit log in memory, and a plant file with writable tags.

The device is honest: it holds a value per tag, ``prepare`` encodes as a uint16 tag with
a scale would (refusing what it cannot hold), ``write`` stores what it was sent, and
``read_tag`` returns what it holds. Every request is recorded, so a test can say
"nothing was written" or "written exactly once". Behaviours a device can have (refuse
a write, not answer, take its time, hold a different value) are switches on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.driver import (
    PreparedWrite,
    TagReading,
    WriteFailed,
    WriteOutcomeUnknown,
    WriteRefused,
)
from edge_agent.errors import DriverError
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.writes.model import SignedForm, WriteRequest, WriteValue
from edge_agent.writes.policy import PlantWrites
from edge_agent.writes.service import WriteService

NS = 1_000_000_000
#: 2026-12-05T06:00:00Z
T0 = 1_796_450_400 * NS
KEY = "a-shared-key-of-some-length"

PLANT = """
plant: {name: hall-1}
state_dir: /tmp/never-used
commands: {signatures: optional, key: "%(key)s", max_age: 30s}
service:
  health: {listen: 127.0.0.1, port: 9100}
  console:
    users:
      - {name: alice, password_hash: "%(hash)s", writes: true}
      - {name: bob, password_hash: "%(hash)s"}
devices:
  - name: compressor-1
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 5020}
    writes: {max_per_minute: 5}
    poll_groups:
      - interval: 1s
        tags:
          - {name: pressure, table: input, address: 0, scale: 0.1, unit: bar}
          - name: pressure_setpoint
            address: 10
            scale: 0.1
            unit: bar
            write:
              channels: [mqtt, cli, console]
              min: 5.0
              max: 7.0
              step: 0.1
              max_per_minute: 3
              read_back: {tolerance: 0.01, within: 2s}
          - name: state
            address: 11
            enum: {0: "off", 1: idle, 2: run}
          - name: mode
            address: 12
            enum: {0: "off", 1: auto, 2: manual}
            write:
              channels: [cli, sparkplug]
              allowed: ["off", auto]
              only_when: {tag: state, values: [idle, "off"]}
          - name: pump
            table: coil
            address: 0
            type: bool
            write: {channels: [cli], read_back: false}
          - name: label
            address: 20
            type: string
            length: 4
            write: {channels: [cli], allowed: [A1, B2]}
  - name: press-2
    driver: opcua
    endpoint: opc.tcp://127.0.0.1:4840
    methods:
      - name: ack
        object: ns=2;s=Press
        method: ns=2;s=Press.Ack
        channels: [cli, mqtt]
        arguments:
          - {name: code, min: 0, max: 99, step: 1}
          - {name: who, allowed: [operator, shift-lead]}
    poll_groups:
      - interval: 1s
        tags:
          - name: speed
            node: ns=2;s=Press.Speed
            write: {channels: [cli], min: 0, max: 100}
"""


def plant_text(**changes: str) -> str:
    from argon2 import PasswordHasher

    hashed = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    return PLANT % {"key": changes.get("key", KEY), "hash": hashed}


def plant(**changes: str) -> PlantConfig:
    return parse_config(plant_text(**changes), env={})


@dataclass
class Clock:
    """Wall time of our own: sleeping advances it, nothing waits."""

    now: int = T0
    sleeps: list[float] = field(default_factory=list)

    def time_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += int(seconds * NS)

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * NS)


@dataclass
class Device:
    """An honest in-memory device: ``values`` is what it holds; every request recorded."""

    clock: Clock
    values: dict[str, WriteValue] = field(default_factory=dict)
    #: Tag name -> scale of a uint16 register (the encoding ``prepare`` does).
    scales: dict[str, float] = field(default_factory=dict)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    #: "ok", "failed" (an exception answer), "silent_applied" / "silent_lost" (no
    #: answer; the value taken or not), "stores_other" (confirms, holds another value),
    #: "not_connected" (nothing sent), "hangs" (sent, never answered).
    write_mode: str = "ok"
    #: Reads after a write before the device shows the new value.
    lag_reads: int = 0
    #: Each read takes this long (on the clock).
    read_seconds: float = 0.0
    read_error: str = ""
    #: Tag -> reason: the tag reads bad.
    bad: dict[str, str] = field(default_factory=dict)
    call_output: tuple[WriteValue, ...] = (0,)
    #: Set once a write in mode "hangs" has been sent.
    hanging: asyncio.Event = field(default_factory=asyncio.Event)
    _pending: tuple[str, WriteValue, int] | None = None

    @property
    def writes(self) -> list[Any]:
        return [r for r in self.requests if r[0] in ("write", "call")]

    async def prepare(self, tag: str, value: bool | int | float | str) -> PreparedWrite:
        self.requests.append(("prepare", (tag, value)))
        scale = self.scales.get(tag)
        if scale is None:
            return PreparedWrite(tag, value, value, f"{tag} <- {value!r}", value)
        assert isinstance(value, int | float)
        assert not isinstance(value, bool)
        raw = value / scale
        if abs(raw - round(raw)) > 1e-6:
            raise WriteRefused(f"{value} is not a multiple of the tag's scale {scale}")
        raw = round(raw)
        if not 0 <= raw <= 65535:
            raise WriteRefused("uint16 holds 0-65535 raw")
        expected = round(raw * scale, 10)
        return PreparedWrite(tag, value, expected, f"holding <- 0x{raw:04X} (function 6)", raw)

    async def write(self, prepared: PreparedWrite) -> None:
        if self.write_mode == "not_connected":  # the driver's "nothing was sent"
            raise DriverError("disconnected", "not connected")
        self.requests.append(("write", prepared.payload))
        if self.write_mode == "hangs":  # sent; the answer never comes
            self.hanging.set()
            await asyncio.Event().wait()
        tag, expected = prepared.tag, prepared.expected
        if self.write_mode == "failed":
            raise WriteFailed("exception code 3 (illegal data value)")
        if self.write_mode == "silent_lost":
            raise WriteOutcomeUnknown("no answer within 1 s")
        new = expected
        if self.write_mode == "stores_other":
            assert isinstance(expected, float | int)
            new = expected + 1.0
        self._pending = (tag, new, self.lag_reads)
        if self.lag_reads == 0:
            self._apply()
        if self.write_mode == "silent_applied":
            raise WriteOutcomeUnknown("no answer within 1 s")

    def _apply(self) -> None:
        if self._pending is not None:
            tag, value, _ = self._pending
            self.values[tag] = value
            self._pending = None

    async def read_tag(self, tag: str) -> TagReading:
        self.requests.append(("read", tag))
        self.clock.advance(self.read_seconds)
        if self._pending is not None and self._pending[0] == tag:
            name, value, left = self._pending
            self._pending = (name, value, left - 1)
            if left - 1 <= 0:
                self._apply()
        if self.read_error:
            raise DriverError("timeout", self.read_error)
        if tag in self.bad:
            return TagReading(None, False, self.bad[tag])
        value = self.values.get(tag)
        return TagReading(value, value is not None, "" if value is not None else "never set")

    async def call(
        self, method: str, args: Mapping[str, bool | int | float | str]
    ) -> tuple[bool | int | float | str, ...]:
        self.requests.append(("call", (method, dict(args))))
        if self.write_mode == "failed":
            raise WriteFailed("BadUserAccessDenied")
        if self.write_mode == "silent_lost":
            raise WriteOutcomeUnknown("no answer within 5 s")
        return self.call_output


@dataclass
class NotWritable:
    """A driver without the Writes capability."""

    device: str = "compressor-1"


@dataclass
class Devices:
    """The agent's side: device name -> (driver, state)."""

    running: dict[str, tuple[object, DeviceState]] = field(default_factory=dict)

    def device(self, name: str) -> tuple[object, DeviceState] | None:
        return self.running.get(name)


@dataclass
class MemoryAudit:
    """The audit log as the gate sees it (edge_agent.writes.audit.AuditLog), in memory."""

    records: list[dict[str, object]] = field(default_factory=list)
    broken: str = ""

    def append(self, record: Mapping[str, object]) -> None:
        if self.broken:
            raise OSError(28, self.broken)
        self.records.append(dict(record))

    def ready(self) -> str:
        return ""

    def recent_ids(self, since_ns: int) -> dict[str, tuple[int, str]]:
        from datetime import datetime

        found: dict[str, tuple[int, str]] = {}
        for record in self.records:
            stamp = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
            when = int(stamp.timestamp()) * NS + stamp.microsecond * 1000
            if record["id"] and when >= since_ns:
                found[str(record["id"])] = (when, str(record["outcome"]))
        return found


@dataclass
class Gate:
    """A WriteService on the stand-ins, with its parts at hand."""

    service: WriteService
    clock: Clock
    device: Device
    opcua: Device
    devices: Devices
    audit: MemoryAudit

    async def send(self, **fields: Any) -> Any:
        """Submit a request (defaults: a cli write of pressure_setpoint 6.5)."""
        base: dict[str, Any] = {
            "id": f"c{len(self.audit.records) + 1}",
            "channel": "cli",
            "identity": "operator",
            "device": "compressor-1",
            "tag": "pressure_setpoint",
            "value": 6.5,
            "received_at_ns": self.clock.now,
        }
        base.update(fields)
        if base.get("method") is not None and "tag" not in fields:
            base["tag"] = None
        return await self.service.submit(WriteRequest(**base))


def make_gate(config: PlantConfig | None = None, audit: MemoryAudit | None = None) -> Gate:
    clock = Clock()
    device = Device(clock, {"pressure_setpoint": 7.0, "state": "idle", "mode": "off"})
    device.scales["pressure_setpoint"] = 0.1
    opcua = Device(clock, {"speed": 10.0})
    devices = Devices(
        {
            "compressor-1": (device, DeviceState.ONLINE),
            "press-2": (opcua, DeviceState.ONLINE),
        }
    )
    audit = audit if audit is not None else MemoryAudit()
    service = WriteService(
        PlantWrites.of(config or plant()),
        devices,
        audit,
        time_ns=clock.time_ns,
        sleep=clock.sleep,
    )
    service.start()
    return Gate(service, clock, device, opcua, devices, audit)


def signed(text: str, key: str = KEY) -> SignedForm:
    digest = hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()
    return SignedForm(text.encode(), digest)


def isclose(a: object, b: float) -> bool:
    return isinstance(a, float | int) and math.isclose(a, b, abs_tol=1e-9)

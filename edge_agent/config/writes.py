"""The write policy of the plant file: which tags may be written, how, and by whom.

Deny by default. A tag is writable only with a ``write:`` block (:class:`WritePolicy`),
and only through the command channels it names. A device may bound the writes to all
its tags (:class:`DeviceWrites`); the plant's ``commands:`` section
(:class:`CommandsConfig`) says how commands arrive (signatures, the local socket,
the audit log). docs/WRITES.md explains each rule; :mod:`edge_agent.writes` enforces
them; cross-field rules (a write block on an input register, a condition on a tag the
device does not have) are in :mod:`edge_agent.config.checks.writes`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edge_agent.config.base import Duration, Name, Strict
from edge_agent.config.outbox import ByteSize

#: Where a command may come from. ``cli`` is ``edge-agent write`` through the agent's
#: local socket; ``console`` the web console (a logged-in user allowed to write);
#: ``mqtt`` the JSON command topic; ``sparkplug`` an NCMD/DCMD.
WriteChannel = Literal["mqtt", "cli", "console", "sparkplug"]

#: A value a policy may list: an enum label, a number, true/false, a text.
AllowedValue = bool | int | float | str


class ReadBack(Strict):
    """After the write, read the tag until it shows the value, for at most ``within``."""

    tolerance: float = Field(
        default=0.0,
        ge=0,
        description="Largest difference (engineering units) between the value read back "
        "and the value the device was sent that still counts as applied.",
    )
    within: Duration = Field(
        default=2.0, gt=0, le=60, description="How long the device has to show the value."
    )


class WriteCondition(Strict):
    """Write only while another tag of the device shows one of ``values`` (read fresh from
    the device when the command arrives, never taken from the last poll)."""

    tag: Name
    values: list[AllowedValue] = Field(
        min_length=1, description="Enum labels (or values) the tag must show, e.g. [idle, off]."
    )


class WritePolicy(Strict):
    """A tag's ``write:`` block: without it the tag cannot be written at all."""

    channels: list[WriteChannel] = Field(
        min_length=1,
        description="Who may write the tag: mqtt, cli, console, sparkplug (at least one).",
    )
    min: float | None = Field(default=None, description="Lowest value allowed (numeric tags).")
    max: float | None = Field(default=None, description="Highest value allowed (numeric tags).")
    step: float | None = Field(
        default=None,
        gt=0,
        description="Values allowed are min + k x step (or k x step without min).",
    )
    allowed: list[AllowedValue] | None = Field(
        default=None,
        min_length=1,
        description="The only values allowed: enum labels, true/false, numbers or texts.",
    )
    max_per_minute: int = Field(
        default=6, ge=1, le=600, description="Writes to this tag in any 60 s."
    )
    read_back: ReadBack | Literal[False] = Field(
        default_factory=ReadBack,
        description="Confirm the write by reading the tag back; false for a tag the device "
        "does not keep (a command register that resets itself).",
    )
    only_when: WriteCondition | None = Field(
        default=None, description="Write only while another tag of the device shows ..."
    )

    @model_validator(mode="after")
    def _range_in_order(self) -> WritePolicy:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class DeviceWrites(Strict):
    """A device's ``writes:`` block: bounds shared by the writes to all its tags."""

    max_per_minute: int = Field(
        default=12, ge=1, le=6000, description="Writes to this device in any 60 s."
    )


class ModbusWrites(DeviceWrites):
    """A Modbus device's ``writes:`` block: the bound, and which function codes it takes."""

    functions: Literal["single", "multiple"] = Field(
        default="single",
        description="single: one register by function 6, one coil by 5 (several registers "
        "by 16); multiple: always 16 and 15, for devices that implement only those.",
    )
    mask_write: bool = Field(
        default=False,
        description="Write a bit inside a holding register with function 22 (mask write) "
        "instead of reading the register and writing it back whole.",
    )


class AuditFiles(Strict):
    """The audit log's files in the state directory (JSON lines, fsynced per record)."""

    max_bytes: ByteSize = Field(
        default=10_000_000, ge=10_000, description="Size at which the log rotates."
    )
    keep: int = Field(default=10, ge=1, le=1000, description="Rotated files kept.")


class CommandsConfig(Strict):
    """The plant's ``commands:`` section: how write commands reach the agent."""

    signatures: Literal["off", "optional", "required"] = Field(
        default="optional",
        description="HMAC-SHA256 signatures on MQTT commands: off (ignored), optional "
        "(checked when present), required (an unsigned MQTT command is refused).",
    )
    key: str = Field(
        default="",
        repr=False,
        description="The shared HMAC key; write ${VAR} to take it from the environment.",
    )
    max_age: Duration = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A command issued longer ago than this (or this far in the future) "
        "is refused; its id is remembered this long, so a copy of it is refused too.",
    )
    socket: bool = Field(
        default=True,
        description="Listen on the local socket (state_dir/commands.sock, owner only) "
        "that `edge-agent write` talks to.",
    )
    socket_group: str = Field(
        default="", description="Also let this Unix group use the local socket."
    )
    audit: AuditFiles = AuditFiles()

    @model_validator(mode="after")
    def _key_for_signatures(self) -> CommandsConfig:
        if self.signatures == "required" and not self.key:
            raise ValueError("signatures: required needs a key (key: ${COMMAND_KEY})")
        return self


__all__ = [
    "AllowedValue",
    "AuditFiles",
    "CommandsConfig",
    "DeviceWrites",
    "ModbusWrites",
    "ReadBack",
    "WriteChannel",
    "WriteCondition",
    "WritePolicy",
]

"""What a write command is, what comes of it, and the door every channel goes through.

Pure data: no I/O. The channels build :class:`WriteRequest` s; the
:class:`WriteGate` (:class:`edge_agent.writes.service.WriteService`) decides and acts,
and answers with a :class:`WriteResult`, which is also what the audit log keeps.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from edge_agent.config.writes import WriteChannel
from edge_agent.model import iso_utc_ms
from edge_agent.writes.scrub import clean

#: A value as a command carries it and as a tag shows it: a number (engineering units,
#: after scale and offset), an enum label, true/false, a text.
WriteValue = bool | int | float | str


class Outcome(enum.Enum):
    """How a command ended. Only APPLIED means the device shows the value."""

    #: Refused before anything was sent to the device (policy, signature, rate, state).
    REFUSED = "refused"
    #: Passed every check; ``dry_run`` asked that nothing be written.
    DRY_RUN = "dry_run"
    #: Written and read back within the tolerance (or confirmed by the device, for a
    #: tag with ``read_back: false``: then ``read_back`` is None).
    APPLIED = "applied"
    #: Written (the device confirmed) but the value read back differs, or never came.
    MISMATCH = "mismatch"
    #: The device answered the write with an error (a Modbus exception, a bad status).
    FAILED = "failed"
    #: No answer to the write (timeout, garbled reply) and the read-back shows the value
    #: from before: the write did not take effect.
    NOT_APPLIED = "not_applied"
    #: No answer to the write and no read-back that tells: nobody knows. Never retried.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SignedForm:
    """What a signature covers (the canonical bytes, see :mod:`edge_agent.writes.signing`)
    and the signature as sent (lower-case hex)."""

    canonical: bytes
    signature: str


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One command, as a channel understood it (never trusted: the gate checks it all)."""

    #: The command's id (chosen by the sender, unique; a signed command's nonce).
    id: str
    channel: WriteChannel
    #: Who sent it, where known: the console user, the local socket's Unix user, the
    #: MQTT client if the broker tells, ``""`` when unknown. Never a secret.
    identity: str
    device: str
    #: The tag to write; exactly one of ``tag`` and ``method`` is set.
    tag: str | None = None
    value: WriteValue | None = None
    #: An OPC UA method configured on the device, with its arguments by name.
    method: str | None = None
    args: Mapping[str, WriteValue] = field(default_factory=dict)
    #: When the sender issued it, and when it stops being valid (ns since the epoch);
    #: None when the channel has no such notion (the CLI and the console: now).
    issued_at_ns: int | None = None
    expires_at_ns: int | None = None
    dry_run: bool = False
    #: The signed form of an MQTT command that carried a signature.
    signed: SignedForm | None = None
    #: When the agent received it (ns since the epoch).
    received_at_ns: int = 0
    #: Set by a channel that could not take the command as it came (an MQTT payload that
    #: is not a command document, a Sparkplug metric without a value): why. The gate
    #: refuses such a request with this reason before any other check, and audits it.
    #: A channel sets neither ``tag`` nor ``method`` on it, so it is malformed even to a
    #: gate that overlooked this field.
    refusal: str = ""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The answer to one command; the audit record is this plus the request's fields."""

    id: str
    device: str
    target: str  # the tag, or the method's name
    outcome: Outcome
    #: Why: the refusal, the device's error, the mismatch; ``""`` when applied.
    reason: str = ""
    requested: WriteValue | Mapping[str, WriteValue] | None = None
    #: The tag's value read just before the write (None: not read, e.g. refused early).
    before: WriteValue | None = None
    #: The value read back after the write (None: none read).
    read_back: WriteValue | None = None
    #: What went on the wire, for people (``holding 0 <- 0x028A (function 6)``); for a
    #: dry run what would have; empty when refused (nothing was sent).
    sent: str = ""
    #: A method call's output arguments.
    output: tuple[WriteValue, ...] = ()
    received_at_ns: int = 0
    #: When the write was sent and when the read-back confirmed it (0: not reached).
    written_at_ns: int = 0
    confirmed_at_ns: int = 0
    finished_at_ns: int = 0
    #: Whether ``target`` is a tag (the result says ``"tag"``) or a method (``"method"``).
    target_kind: Literal["tag", "method"] = "tag"

    @property
    def accepted(self) -> bool:
        """Passed the policy (whatever the device then did)."""
        return self.outcome is not Outcome.REFUSED

    def to_json(self) -> dict[str, object]:
        """The result document (``edge/{plant}/{device}/cmd/result``, the CLI's answer):
        times RFC 3339 UTC with milliseconds, absent ones null; never a secret (a
        result holds none: the request's signature and the key are not in it)."""
        requested: object = self.requested
        if isinstance(requested, Mapping):
            requested = {name: _finite(value) for name, value in requested.items()}
        document: dict[str, object] = {
            "id": self.id or None,
            "device": self.device or None,
            self.target_kind: self.target or None,
            "accepted": self.accepted,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "requested": _finite(requested),
            "before": _finite(self.before),
            "read_back": _finite(self.read_back),
            "sent": self.sent,
            "output": [_finite(value) for value in self.output],
            "received_at": _time(self.received_at_ns),
            "written_at": _time(self.written_at_ns),
            "confirmed_at": _time(self.confirmed_at_ns),
            "finished_at": _time(self.finished_at_ns),
            "timing_ms": {
                "to_write": _ms(self.received_at_ns, self.written_at_ns),
                "to_confirm": _ms(self.written_at_ns, self.confirmed_at_ns),
                "total": _ms(self.received_at_ns, self.finished_at_ns),
            },
        }
        # Published (cmd/result) like the audit record: the same scrub (an argument
        # named like a secret is dropped, a registered secret redacted in any text).
        return clean(document)


def _finite(value: object) -> object:
    """A NaN or infinity (a device may read back one) is null: JSON has no such number."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _time(ns: int) -> str | None:
    return iso_utc_ms(ns) if ns else None


def _ms(start_ns: int, end_ns: int) -> float | None:
    """Milliseconds from ``start_ns`` to ``end_ns`` (0.1 ms), None when either is absent."""
    if not start_ns or not end_ns:
        return None
    return round((end_ns - start_ns) / 1e6, 1)


def audit_record(
    request: WriteRequest, result: WriteResult, plant: str, *, signed: bool
) -> dict[str, object]:
    """The audit record of one command: its result plus who sent it, how and when.

    ``signed`` is whether a signature was checked and found good (never the signature
    itself: the log holds no secret, and a signature would let a reader replay nothing
    but would still be a credential's fingerprint).
    """
    record: dict[str, object] = {"time": _time(result.finished_at_ns)}
    record.update(result.to_json())
    record.update(
        {
            "channel": request.channel,
            "identity": request.identity,
            "plant": plant,
            "dry_run": request.dry_run,
            "signed": signed,
            "issued_at": _time(request.issued_at_ns or 0),
            "expires_at": _time(request.expires_at_ns or 0),
        }
    )
    return record


class WriteGate(Protocol):
    """The one door to the devices' writes; every channel goes through it."""

    async def submit(self, request: WriteRequest) -> WriteResult:
        """Check ``request`` against the policy, write, read back, audit; never raises
        for anything the request or the device did (that is a result)."""
        ...

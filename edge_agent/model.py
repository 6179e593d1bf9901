"""Samples as they travel the data path: driver -> batch -> processors -> outbox -> sinks.

A poll produces one :class:`SampleBatch`: the values of all tags of one poll group
of one device, read together. Batches are plain slotted dataclasses holding
parallel lists; there is no object per sample, because the hot path handles tens
of thousands of values a second on a small gateway.

What every layer shares sits here, at the bottom, so that no layer has to import one
above it for it: the time format of the messages and of ``outbox status``
(:func:`iso_utc_ms`), for one.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

#: A decoded value. ``None`` only ever accompanies a bad (or uncertain) quality.
Value = bool | int | float | str | None


class Quality(enum.IntEnum):
    """OPC-style quality of one value; ordered so that ``max()`` gives the worst."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2

    @property
    def label(self) -> str:
        return self.name.lower()


#: Reason strings used on bad samples, shared by every driver.
REASON_TIMEOUT = "timeout"
REASON_DISCONNECTED = "disconnected"
REASON_SENTINEL = "sentinel"
REASON_DECODE = "decode error"
#: The device answered with a frame that does not fit the request.
REASON_INVALID_RESPONSE = "invalid response"
#: A driver failed in a way it did not anticipate (a bug): see the log for the traceback.
REASON_INTERNAL = "internal error"


#: ``attributes["kind"]`` of a batch without samples that proves a change-based group
#: (an OPC UA subscription) alive and complete up to its ``timestamp_ns``: every value
#: it last reported still holds then. Processors see it; sinks never do.
KIND_ALIVE = "alive"


def iso_utc_ms(timestamp_ns: int) -> str:
    """``2026-11-26T19:00:01.000Z``: UTC, millisecond precision (``ts_ns`` carries the rest)."""
    seconds, rest_ns = divmod(timestamp_ns, 1_000_000_000)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest_ns // 1_000_000:03d}Z"
    )


def exception_reason(code: int) -> str:
    """Reason for a sample whose read was answered with Modbus exception ``code``."""
    return f"exception code {code}"


@dataclass(slots=True)
class SampleBatch:
    """The values of one poll group of one device, read at one moment.

    ``names``, ``values``, ``qualities`` and ``reasons`` are parallel. ``names`` is
    normally the same tuple object for every batch of a group, so a batch costs a
    few list allocations, not one object per value. ``reasons[i]`` is ``""`` for a
    good sample. ``timestamps_ns`` is set only by drivers that stamp each value
    separately (OPC UA source timestamps); otherwise every value carries
    ``timestamp_ns``.

    A batch is not changed once it reaches the outbox: the sinks keep the encoded text
    of a value list by the list's identity (:mod:`edge_agent.sinks.value_text`), and
    every driver builds new lists for every poll.
    """

    device: str
    group: str
    timestamp_ns: int
    names: Sequence[str]
    values: list[Value]
    qualities: list[Quality]
    reasons: list[str]
    timestamps_ns: list[int] | None = None
    #: Set for data replayed from a backlog rather than collected just now.
    historical: bool = False
    #: Free-form per-batch labels (e.g. metric window start/end); small and rare.
    attributes: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[tuple[str, Value, Quality, str]]:
        return zip(self.names, self.values, self.qualities, self.reasons, strict=True)

    def sample_time_ns(self, index: int) -> int:
        """Timestamp of sample ``index`` (per-value stamp where the driver gave one)."""
        if self.timestamps_ns is not None:
            return self.timestamps_ns[index]
        return self.timestamp_ns

    @classmethod
    def all_bad(
        cls, device: str, group: str, timestamp_ns: int, names: Sequence[str], reason: str
    ) -> SampleBatch:
        """A batch in which every tag is bad for one reason (device unreachable, timeout...)."""
        n = len(names)
        return cls(
            device=device,
            group=group,
            timestamp_ns=timestamp_ns,
            names=names,
            values=[None] * n,
            qualities=[Quality.BAD] * n,
            reasons=[reason] * n,
        )

    @classmethod
    def alive(cls, device: str, group: str, until_ns: int) -> SampleBatch:
        """A proof of life of a change-based group (see :data:`KIND_ALIVE`)."""
        return cls(device, group, until_ns, (), [], [], [], attributes={"kind": KIND_ALIVE})

    @property
    def good_count(self) -> int:
        return self.qualities.count(Quality.GOOD)


@dataclass(slots=True, frozen=True)
class Pending:
    """A batch waiting for one sink, with its sequence number (increasing per feed).

    Made by the outbox (the id of the batch in the log), read by the sink runners: it
    sits here, below both, so that neither imports the other.
    """

    seq: int
    batch: SampleBatch

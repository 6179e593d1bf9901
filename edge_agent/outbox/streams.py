"""The outbox's streams: device, group and tag names, stored once and named by id.

A group gets at most :data:`MAX_STREAMS_PER_GROUP` streams; a batch naming another
set of tags (an OPC UA subscription hands over whichever tags changed) carries its
names in its body, under its group's stream without names, so neither the table nor
this map grows without bound.

Each stream row carries a checksum, and every committed stream is also kept in a copy
next to the file (:class:`~edge_agent.outbox.sidecar.StreamsFile`): a stream row lost
or altered would otherwise make every batch of it unreadable, or worse, deliver its
values under the wrong names.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Final

import structlog

from edge_agent.model import SampleBatch
from edge_agent.outbox.codec import CodecError, decode_names, encode_names, stream_crc
from edge_agent.outbox.schema import Stream
from edge_agent.outbox.sidecar import StoredStreams

log = structlog.get_logger("edge_agent.outbox")

#: Distinct tag-name sets of one device's group kept as streams (read groups have one,
#: or one per array shape); beyond, names are stored with each batch.
MAX_STREAMS_PER_GROUP: Final = 64


class Streams:
    """stream id <-> (device, group, names), as the file has them (one thread)."""

    def __init__(self) -> None:
        self._ids: dict[Stream, int] = {}
        self._of: dict[int, Stream] = {}
        #: Streams per (device, group), to cap them at MAX_STREAMS_PER_GROUP.
        self._per_group: dict[tuple[str, str], int] = {}
        #: Made by the transaction under way: for the copy once it is committed.
        self._fresh: StoredStreams = {}

    def _clear(self) -> None:
        self._ids, self._of, self._per_group, self._fresh = {}, {}, {}, {}

    def get(self, stream_id: int) -> Stream | None:
        return self._of.get(stream_id)

    def load(self, db: sqlite3.Connection, copy: StoredStreams) -> StoredStreams:
        """Read the stream table, each row checked; a damaged row is taken from ``copy``.
        Returns what is now known (for the copy to match)."""
        self._clear()
        known: StoredStreams = {}
        for stream_id, device, group, names, crc in db.execute(
            "SELECT id, device, grp, names, crc FROM streams"
        ):
            stored = (device, group, names)
            if crc is None and stream_id in copy:
                stored = copy[stream_id]  # checked by the copy's own checksum
            elif crc is not None and crc != stream_crc(device, group, names):
                spare = copy.get(stream_id)
                log.error(
                    "outbox stream row damaged",
                    stream=stream_id,
                    repaired_from_copy=spare is not None,
                )
                if spare is None:
                    continue  # its batches cannot be read: they go to the dead letters
                stored = spare
            with contextlib.suppress(CodecError):
                self._remember(stream_id, (stored[0], stored[1], decode_names(stored[2])))
                known[stream_id] = stored
        return known

    def id_for(self, db: sqlite3.Connection, batch: SampleBatch) -> tuple[int, bool]:
        """The stream of ``batch`` (made if new), and whether its names must go into its
        body."""
        names = batch.names if isinstance(batch.names, tuple) else tuple(batch.names)
        key = (batch.device, batch.group, names)
        stream_id = self._ids.get(key)
        if stream_id is not None:
            return stream_id, False
        if self._per_group.get((batch.device, batch.group), 0) < MAX_STREAMS_PER_GROUP:
            return self._new(db, key), False
        # One more set of names of a group that has many: the names travel in the body,
        # under the group's stream without names (made even beyond the cap: just one).
        bare = (batch.device, batch.group, ())
        return self._ids.get(bare) or self._new(db, bare), True

    def committed(self) -> StoredStreams:
        """The streams the transaction just committed made (for the copy)."""
        fresh, self._fresh = self._fresh, {}
        return fresh

    def rolled_back(self, db: sqlite3.Connection) -> None:
        """Streams first seen in the failed transaction are not in the file."""
        self._fresh = {}
        known = {row[0] for row in db.execute("SELECT id FROM streams")}
        for stream_id in [i for i in self._of if i not in known]:
            device, group, names = self._of.pop(stream_id)
            self._ids.pop((device, group, names), None)
            self._per_group[device, group] -= 1

    def _new(self, db: sqlite3.Connection, stream: Stream) -> int:
        device, group, names = stream
        encoded = encode_names(names)
        cursor = db.execute(
            "INSERT INTO streams (device, grp, names, crc) VALUES (?, ?, ?, ?)",
            (device, group, encoded, stream_crc(device, group, encoded)),
        )
        stream_id = int(cursor.lastrowid or 0)
        self._remember(stream_id, stream)
        self._fresh[stream_id] = (device, group, encoded)
        return stream_id

    def _remember(self, stream_id: int, stream: Stream) -> None:
        self._of[stream_id] = stream
        self._ids[stream] = stream_id
        group = (stream[0], stream[1])
        self._per_group[group] = self._per_group.get(group, 0) + 1

"""OPC UA subscription batches through the outbox file: exact round trip, bounded streams.

A subscription hands over whichever tags changed, so its batches name ever new subsets
of the group's tags (``names`` a list, a timestamp per value). The batches here come
from the OPC UA driver's own assembler, are written to a real outbox file, and read
back after a restart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import sqlite3
from pathlib import Path

from asyncua import ua

from drivers.opcua.batches import GroupAssembler
from edge_agent.config import OutboxConfig
from edge_agent.model import SampleBatch
from edge_agent.outbox import Outbox
from edge_agent.outbox.store import MAX_STREAMS_PER_GROUP

T0 = dt.datetime(2026, 3, 1, 6, 0, 0, 250000, tzinfo=dt.UTC)
TAGS = tuple(f"tag{k}" for k in range(12))


#: Each node has one type, as on a server: three tags of each.
KINDS = ("double", "int", "bool", "string")


def _change(rng: random.Random, second: int, tag: int) -> ua.DataValue:
    kind = "bad" if rng.random() < 0.1 else KINDS[tag % len(KINDS)]
    when = T0 + dt.timedelta(seconds=second, microseconds=rng.randrange(1_000_000))
    if kind == "bad":
        return ua.DataValue(
            StatusCode=ua.StatusCode(ua.StatusCodes.BadDeviceFailure), SourceTimestamp=when
        )
    variant = {
        "double": ua.Variant(rng.uniform(-1e6, 1e6), ua.VariantType.Double),
        "int": ua.Variant(rng.randrange(-(2**31), 2**31), ua.VariantType.Int32),
        "bool": ua.Variant(rng.random() < 0.5, ua.VariantType.Boolean),
        "string": ua.Variant(f"state {rng.randrange(9)}", ua.VariantType.String),
    }[kind]
    return ua.DataValue(variant, SourceTimestamp=when)


def subscription_batches(count: int, seed: int = 5) -> list[SampleBatch]:
    """What an OPC UA subscribe group hands over: random subsets, some tags twice."""
    rng = random.Random(seed)
    assembler = GroupAssembler("opc-1", "events", TAGS, use_source=True)
    out: list[SampleBatch] = []
    second = 0
    while len(out) < count:
        second += 1
        changed = rng.sample(range(len(TAGS)), rng.randrange(1, len(TAGS)))
        changes = [(i, _change(rng, second, i)) for i in changed]
        changes += [(i, _change(rng, second, i)) for i in changed[: rng.randrange(3)]]
        out += assembler.change_batches(second * 1_000_000_000, changes)
    return out[:count]


def _as_stored(batch: SampleBatch) -> SampleBatch:
    """``batch`` as it comes back from the file: names a tuple, replayed."""
    return dataclasses.replace(batch, names=tuple(batch.names), historical=True)


async def test_subscription_batches_round_trip_and_streams_stay_bounded(
    tmp_path: Path,
) -> None:
    batches = subscription_batches(400)
    assert all(isinstance(b.names, list) and b.timestamps_ns is not None for b in batches)
    assert len({tuple(b.names) for b in batches}) > 3 * MAX_STREAMS_PER_GROUP
    path = tmp_path / "outbox.sqlite3"
    config = OutboxConfig(replay_rate=0)

    outbox = Outbox(config, path, ["tsdb"])
    await outbox.start()
    try:
        for batch in batches:
            outbox.append(batch)
        await outbox.flush()
    finally:
        await outbox.close()

    db = sqlite3.connect(path)
    try:
        (streams,) = db.execute("SELECT count(*) FROM streams").fetchone()
    finally:
        db.close()
    # One stream per name set up to the cap, then one without names for all the rest.
    assert streams == MAX_STREAMS_PER_GROUP + 1

    outbox = Outbox(config, path, ["tsdb"])
    await outbox.start()
    try:
        view = outbox.view("tsdb")
        back: list[SampleBatch] = []
        while len(view):
            pending = await view.peek(1000)
            back += [p.batch for p in pending]
            view.ack(pending[-1].seq)
    finally:
        await outbox.close()
    assert back == [_as_stored(b) for b in batches]

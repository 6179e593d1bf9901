"""The sinks' cursors as the file holds them: loaded at open, and what a drop costs each.

A cursor (:class:`~edge_agent.outbox.ranges.Delivered`) is every id a sink is done
with. At open: a sink seen for the first time starts at the end of the log, a sink no
longer configured is forgotten, and ids that no row holds (delivered and pruned,
dropped, never stored) are nothing to deliver.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from edge_agent.outbox.ranges import Delivered, Span, parse_ranges


def load_cursors(
    db: sqlite3.Connection, sinks: Sequence[str], last_id: int
) -> tuple[int, dict[str, Delivered], dict[str, int]]:
    """(the next id, the cursor of each configured sink, forgotten sink -> its rows not
    delivered). ``last_id``: the highest id committed (the next id is above it even if
    the rows at the top were lost)."""
    stored = {
        sink: Delivered(delivered, parse_ranges(ranges))
        for sink, delivered, ranges in db.execute("SELECT sink, delivered, ranges FROM cursors")
    }
    max_id = db.execute("SELECT coalesce(max(id), 0) FROM batches").fetchone()[0]
    highest = [max_id, last_id]
    for done in stored.values():
        highest.append(done.ranges[-1][1] if done.ranges else done.floor)
    next_id = max(highest) + 1
    forgotten: dict[str, int] = {}
    for sink in sorted(set(stored) - set(sinks)):
        done = stored.pop(sink)
        forgotten[sink] = db.execute(
            "SELECT count(*) FROM batches WHERE id > ?", (done.floor,)
        ).fetchone()[0]
        db.execute("DELETE FROM cursors WHERE sink = ?", (sink,))
    # A sink seen for the first time starts at the end: it is not sent what the
    # outbox holds for the others.
    cursors = {sink: stored.get(sink) or Delivered(next_id - 1) for sink in sinks}
    floor = min((d.floor for d in cursors.values()), default=next_id - 1)
    holes = gaps(db, floor, next_id)
    for done in cursors.values():
        # Ids that no row holds (lost with a damaged page and counted then, or never
        # committed before a crash) are nothing to deliver.
        for lo, hi in holes:
            done.add(lo, hi)
    return next_id, cursors, forgotten


def gaps(db: sqlite3.Connection, floor: int, next_id: int) -> list[Span]:
    """Id ranges above ``floor`` and below ``next_id`` that hold no row."""
    found: list[Span] = []
    expected = floor + 1
    query = (
        "SELECT id, nxt FROM (SELECT id, lead(id) OVER (ORDER BY id) AS nxt "
        "FROM batches WHERE id > ?) WHERE nxt IS NULL OR nxt > id + 1"
    )
    first = db.execute("SELECT min(id) FROM batches WHERE id > ?", (floor,)).fetchone()[0]
    if first is None:
        return [(expected, next_id - 1)] if expected <= next_id - 1 else []
    if first > expected:
        found.append((expected, first - 1))
    for row_id, following in db.execute(query, (floor,)):
        end = (following if following is not None else next_id) - 1
        if end > row_id:
            found.append((row_id + 1, end))
    return found


def undelivered(
    db: sqlite3.Connection, cursors: Iterable[tuple[str, Delivered]], upto: int
) -> dict[str, tuple[int, int]]:
    """sink -> (rows, samples) with ids ``<= upto`` it is not done with."""
    per_sink: dict[str, tuple[int, int]] = {}
    for sink, done in cursors:
        if done.floor >= upto:
            continue
        # (floor, upto] minus its ranges.
        rows, samples = _count(db, done.floor + 1, upto)
        for lo, hi in done.ranges:
            if lo > upto:
                break
            count, total = _count(db, lo, min(hi, upto))
            rows -= count
            samples -= total
        per_sink[sink] = (rows, samples)
    return per_sink


def _count(db: sqlite3.Connection, lo: int, hi: int) -> tuple[int, int]:
    count, total = db.execute(
        "SELECT count(*), coalesce(sum(samples), 0) FROM batches WHERE id BETWEEN ? AND ?",
        (lo, hi),
    ).fetchone()
    return int(count), int(total)

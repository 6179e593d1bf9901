"""Batches appended and not yet in the file, as a backlog read sees them.

A sink behind by more than its live lane reads its older batches back from the file.
While they cannot be written (a full disk, a file that could not be opened at start)
they are still in memory, waiting; the read hands them out from there, marked
``historical`` as a read from the file would, instead of failing on the write's error.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Sequence

from edge_agent.model import Pending, SampleBatch

#: (id, appended at ns, batch): a row waiting to be written.
NewRow = tuple[int, int, SampleBatch]


def read_queued(
    queued: Sequence[NewRow], gap: tuple[int, int], limit: int, max_samples: int
) -> tuple[list[Pending], int]:
    """The queued batches with ids in ``gap`` (``queued`` is in id order): at most
    ``limit``, and beyond the first at most ``max_samples`` samples; and the last id
    examined (every id up to it was returned or holds nothing)."""
    start = bisect.bisect_left(queued, gap[0], key=lambda row: row[0])
    out: list[Pending] = []
    samples = 0
    examined = gap[1]
    for seq, _, batch in itertools.islice(queued, start, None):
        if seq > gap[1]:
            break
        if len(out) >= limit or (out and samples + len(batch) > max_samples):
            examined = seq - 1
            break
        out.append(Pending(seq, dataclasses.replace(batch, historical=True)))
        samples += len(batch)
    return out, examined

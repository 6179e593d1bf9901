"""ReadSize: an unannounced read limit learned by binary search, without a server."""

from __future__ import annotations

import math

import pytest

from drivers.opcua.limits import ReadSize


def _read(learning: ReadSize, count: int, limit: int) -> list[int]:
    """The chunk sizes one read of ``count`` nodes asks of a server taking ``limit``."""
    asked: list[int] = []
    done = 0
    while done < count:
        size = min(learning.next(0) or count, count - done)
        asked.append(size)
        if size > limit:
            learning.on_refused(size)
        else:
            learning.on_accepted(size)
            done += size
    return asked


@pytest.mark.parametrize("count", [2, 3, 17, 100, 1000, 5000])
def test_the_limit_is_learned_exactly_in_about_log2_n_refusals(count: int) -> None:
    for limit in range(1, min(count, 300)):
        learning = ReadSize()
        asked = _read(learning, count, limit)
        # The search ends when both bounds meet; a read too short to finish it goes on
        # at the next read, and never asks more than it refused.
        while not learning.learned:
            asked += _read(learning, count, limit)
        assert learning.accepted == limit, (count, limit, asked)
        assert learning.refusals <= math.ceil(math.log2(count)) + 1, (count, limit, asked)
        assert _read(learning, count, limit) == [limit] * (count // limit) + (
            [count % limit] if count % limit else []
        )


def test_a_limit_that_falls_is_learned_again() -> None:
    learning = ReadSize()
    _read(learning, 1000, 50)
    assert learning.accepted == 50
    _read(learning, 1000, 20)
    assert (learning.learned, learning.accepted) == (True, 20)

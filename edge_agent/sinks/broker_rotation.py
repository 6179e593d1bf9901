"""Which broker of a sink's ``brokers:`` list to try next: the failover rules, pure.

What a plant engineer expects of a list of brokers (the nodes of a cluster):

* a lost connection or a failed attempt moves on to the next broker *at once*: a dead
  node must not cost a backoff pause when its neighbour is up;
* only a full round of failures (every broker tried once since the last connection that
  lasted) backs off (the sink's :class:`~edge_agent.backoff.Backoff`), so a fleet does
  not hammer a cluster that is down, and the next round starts again from the first
  broker: with ``ordered`` the first is the preferred one (the nearest, the primary);
* while connected, nothing moves: a sink on the second broker stays there when the
  first comes back (no flapping; the cluster carries the messages either way);
* ``shuffled``: a random order, picked once per process start (the same order after a
  reload of the sink), so that the agents of a fleet spread over the nodes instead of
  all crowding onto the first.

No I/O and no clock: :class:`~edge_agent.sinks.brokers.BrokerSwitch` drives it.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from typing import Final, Generic, Literal, TypeVar

T = TypeVar("T")

BrokerOrder = Literal["ordered", "shuffled"]

#: Drawn once per process: a ``shuffled`` list keeps its order for the life of the
#: process (a sink rebuilt by a reload starts with the same broker), a new one per start.
_PROCESS_SEED: Final = secrets.randbits(64)


def broker_order(
    items: Sequence[T], order: BrokerOrder, key: str, seed: int | None = None
) -> list[T]:
    """``items`` in the order they are tried: as written, or shuffled by a seed of the
    process (``seed`` in tests) and ``key`` (the sink and its brokers, so that two sinks
    of one agent need not share an order)."""
    ordered = list(items)
    if order == "shuffled":
        random.Random(f"{_PROCESS_SEED if seed is None else seed}|{key}").shuffle(ordered)
    return ordered


class BrokerRotation(Generic[T]):
    """The position in a list of brokers (see the module docstring for the rules)."""

    def __init__(self, brokers: Sequence[T]) -> None:
        if not brokers:
            raise ValueError("a broker rotation needs at least one broker")
        self.brokers: tuple[T, ...] = tuple(brokers)
        self._index = 0
        #: Brokers failed in a row since the last connection that lasted (or the start).
        self._failed = 0
        #: The broker of the last connection made, to tell a failover from a reconnect.
        self._last: T | None = None

    @property
    def current(self) -> T:
        """The broker to try now, or the one connected to."""
        return self.brokers[self._index]

    def connected(self) -> T | None:
        """A connection to :attr:`current` was made. Returns the broker the previous
        connection went to when it was another one (a failover), else None."""
        previous, self._last = self._last, self.current
        return previous if previous is not None and previous != self.current else None

    def failed(self, *, lasted: bool = False) -> bool:
        """The attempt at :attr:`current` failed, or its connection was lost: move on.

        ``lasted``: the connection lost had lived long enough to count as a working
        broker; a new round begins, this loss its first failure. True when every broker
        of the round has now failed: back off, then start again from the first."""
        if lasted:
            self._failed = 0
        self._failed += 1
        if self._failed >= len(self.brokers):
            self._failed = 0
            self._index = 0
            return True
        self._index = (self._index + 1) % len(self.brokers)
        return False

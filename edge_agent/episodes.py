"""Log once per change of state: a fault is logged when it begins and when it ends.

A device that times out every second, a broker that stays down for an hour, a disk that
stays full: logging each failure would bury the one line that matters (and wear the SD
card). Every component reports a lasting condition the same way, with an
:class:`Episode`::

    if self._unwritable.begin():
        log.error("outbox cannot write; ...")      # once, when it starts
    ...
    if self._unwritable.end():
        log.info("outbox writing again")           # once, when it is over

Counting every occurrence is the counters' job (they reach /metrics), not the log's.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Episode:
    """One condition that is either going on or not."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = False

    def begin(self) -> bool:
        """The condition holds now: True only if it did not before (log it then)."""
        if self.active:
            return False
        self.active = True
        return True

    def end(self) -> bool:
        """The condition is over: True only if it held until now (log the recovery)."""
        if not self.active:
            return False
        self.active = False
        return True


class Episodes(Generic[K]):
    """The same condition for many things at once (each processor, each sink ...)."""

    __slots__ = ("_active",)

    def __init__(self) -> None:
        self._active: set[K] = set()

    def begin(self, key: K) -> bool:
        if key in self._active:
            return False
        self._active.add(key)
        return True

    def end(self, key: K) -> bool:
        """True only if ``key``'s condition held until now. Cheap when none does."""
        if not self._active or key not in self._active:
            return False
        self._active.discard(key)
        return True

    def active(self, key: K) -> bool:
        return key in self._active

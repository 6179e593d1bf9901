"""A small, bounded memory of document names (the SHA-256 of a signature).

Remote configuration remembers which documents it has already dealt with, so a replay
of one is dropped at once, before it can take a place in the queue or produce a report:
a document refused for what its file says (validation, lock-out, secrets: it would be
refused again) and the one being applied now. The memory is bounded (an attacker who
can only replay signed documents cannot make it grow) and an entry may expire (after
``max_age`` a replay is refused by its age anyway).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Final

#: How many names are kept; the oldest goes first.
SIZE: Final = 64


class Recent:
    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        #: name -> until (monotonic seconds; inf: no expiry).
        self._names: OrderedDict[str, float] = OrderedDict()

    def add(self, name: str, for_s: float = float("inf")) -> None:
        self._names[name] = time.monotonic() + for_s
        self._names.move_to_end(name)
        while len(self._names) > self._size:
            self._names.popitem(last=False)

    def discard(self, name: str) -> None:
        self._names.pop(name, None)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        until = self._names.get(name)
        if until is None:
            return False
        if until < time.monotonic():
            del self._names[name]
            return False
        return True

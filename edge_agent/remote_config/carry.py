"""The version store follows ``state_dir`` when a reload or a document moves it.

The store lives in the running ``state_dir``. When a reload moved it, the store of the
directory used before is merged into the new directory's (:func:`~.store.merge`: the
higher version wins, with its revoked keys) rather than copied only when the new
directory has none: a directory moved back to still holds the store it had when it was
left, and that stale store must not open a window for a replay nor trust a key revoked
since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from edge_agent.remote_config.store import Versions, VersionStore, merge


class Stores:
    """The store of the running ``state_dir`` (``running_dir``), carried over."""

    def __init__(self, state_dir: Path, running_dir: Callable[[], Path]) -> None:
        self._dir = state_dir
        self._running_dir = running_dir

    @property
    def current(self) -> VersionStore:
        """The running directory's store, merged with the one used before if it moved.
        Raises StoreError (and tries again next time) when either cannot be read."""
        store = VersionStore(self._running_dir())
        if store.state_dir != self._dir:
            before = VersionStore(self._dir)
            if before.exists():
                mine = store.load()
                merged = merge(mine, before.load())
                if merged != mine:
                    store.save(merged)
            self._dir = store.state_dir
        return store

    @staticmethod
    def save(versions: Versions, dirs: Iterable[Path]) -> None:
        """``versions`` in the store of every directory of ``dirs`` (each once)."""
        for state_dir in dict.fromkeys(dirs):
            VersionStore(state_dir).save(versions)

"""Writes per minute, per tag and per device, over a sliding 60 s window.

Counts writes actually sent to a device (whatever came of them): a refused command or a
dry run sends nothing and costs nothing. The windows are kept by name, not by config,
so a reload that changes a limit keeps what was already sent in the last minute.
Memory is bounded by the limits: a window never holds more than its limit's worth of
times (a write beyond it is refused), and empty windows are dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

K = TypeVar("K", str, tuple[str, str])

#: The window, in nanoseconds.
WINDOW_NS = 60_000_000_000


@dataclass
class RateLimiter:
    """Sliding windows of send times (ns), one per (device, tag) and one per device."""

    _tags: dict[tuple[str, str], deque[int]] = field(default_factory=dict)
    _devices: dict[str, deque[int]] = field(default_factory=dict)

    def refusal(
        self, device: str, target: str, tag_limit: int, device_limit: int, now_ns: int
    ) -> str:
        """Why one more write now would exceed a limit; ``""`` when it would not."""
        sent = self._window(self._tags, (device, target), now_ns)
        if len(sent) >= tag_limit:
            return (
                f"rate limit: {len(sent)} writes to {target} in the last 60 s "
                f"(max_per_minute {tag_limit}); the next is allowed in "
                f"{_seconds(sent[-tag_limit] + WINDOW_NS - now_ns)} s"
            )
        sent = self._window(self._devices, device, now_ns)
        if len(sent) >= device_limit:
            return (
                f"rate limit: {len(sent)} writes to device {device} in the last 60 s "
                f"(writes.max_per_minute {device_limit}); the next is allowed in "
                f"{_seconds(sent[-device_limit] + WINDOW_NS - now_ns)} s"
            )
        return ""

    def sent(self, device: str, target: str, now_ns: int) -> None:
        """A write to ``target`` of ``device`` went out at ``now_ns``."""
        self._tags.setdefault((device, target), deque()).append(now_ns)
        self._devices.setdefault(device, deque()).append(now_ns)

    def forget_idle(self, now_ns: int) -> None:
        """Drop windows with nothing in the last 60 s (memory stays with active tags)."""
        for tag in [k for k in self._tags if not self._window(self._tags, k, now_ns)]:
            del self._tags[tag]
        for device in [k for k in self._devices if not self._window(self._devices, k, now_ns)]:
            del self._devices[device]

    @staticmethod
    def _window(windows: dict[K, deque[int]], key: K, now_ns: int) -> deque[int]:
        times = windows.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now_ns - WINDOW_NS:
            times.popleft()
        return times


def _seconds(ns: int) -> str:
    return f"{max(ns, 0) / 1e9:.1f}"

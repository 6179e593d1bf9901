"""sd_notify(3) in a few lines of stdlib: tell systemd we are ready, alive, reloading, stopping.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``). Without
that variable (not started by systemd, or a unit that is not ``Type=notify``) every
call is a no-op, so the agent runs the same from a terminal.

Sending never raises: a full or vanished socket must not take the agent down; the
first failure is logged, then counted.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger("edge_agent.service")


class Notifier:
    """Sends state changes to systemd's notification socket (or nowhere)."""

    def __init__(self, address: str | None, watchdog_seconds: float | None = None) -> None:
        self.address = address
        #: The unit's WatchdogSec, when systemd asked this process for keep-alive pings.
        self.watchdog_seconds = watchdog_seconds
        self.sent = 0
        self.failures = 0
        self._socket: socket.socket | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` as sd_notify does."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        watchdog: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process systemd expects pings from; a child that
        # inherited the variables must not ping for its parent.
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1e6
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (``ready=1`` becomes ``READY=1``); True if delivered."""
        if self.address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)
            self._socket.sendto(message.encode("utf-8", "replace"), target)
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("cannot notify systemd", socket=self.address, error=str(exc))
            return False
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        return self.notify(ready=1, status=_one_line(status))

    def status(self, status: str) -> bool:
        return self.notify(status=_one_line(status))

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this message to
        # the reload it asked for; older versions ignore the field.
        return self.notify(
            reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )

    def stopping(self, status: str) -> bool:
        return self.notify(stopping=1, status=_one_line(status))

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


def _one_line(text: str) -> str:
    """STATUS= ends at the newline: keep what systemctl status shows on one line."""
    return " ".join(text.split())

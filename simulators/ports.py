"""Why a simulator cannot listen on a TCP port, in words (not pymodbus' "check address").

pymodbus swallows the OSError of a failed listen and raises a bare RuntimeError, so
the reason is found again by binding the same address once ourselves.
"""

from __future__ import annotations

import errno
import socket


def bind_error(host: str, port: int) -> OSError | None:
    """What binding ``host:port`` raises now (None: it would bind)."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's listen
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def listen_failure(port: int, exc: BaseException | None) -> str:
    """The reason a listen on ``port`` failed ("" when there is no more to say)."""
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is already in use (another simulator or agent? "
            f"`ss -ltnp 'sport = :{port}'` shows which program); "
            "choose another port, or 0 for any free one"
        )
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return ""

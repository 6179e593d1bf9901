"""Did the server answer this request, or did the channel fail it?

asyncua raises the same ``UaStatusCodeError`` for two different things: the server's
answer to a request (a ServiceFault, or a response whose ServiceResult is bad) and a
failure of the channel (an ERR message, or a chunk it cannot decode), with which it
fails *every* pending request. For a write the difference is the whole point: an
answer saying Bad means the server did not take the value; a channel failure after
the request went out says nothing about it (the server may well have taken it).

So the requests sent inside :func:`watch` are kept (the socket protocol reports each
one it sends through :func:`note_sent`), and :meth:`Exchange.answered` says whether
each of them was completed by a message from the server. Outside :func:`watch`
nothing is kept: polls pay nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

_WATCHED: ContextVar[Exchange | None] = ContextVar("opcua_watched_exchange", default=None)


@dataclass(slots=True)
class Exchange:
    """The requests sent by one task while :func:`watch` was open."""

    sent: list[asyncio.Future[Any]] = field(default_factory=list)

    def answered(self) -> bool:
        """True when something was sent and the server answered each request (whatever
        the answer says); False when nothing was sent or the channel failed one."""
        return bool(self.sent) and all(
            future.done() and not future.cancelled() and future.exception() is None
            for future in self.sent
        )


@contextmanager
def watch() -> Iterator[Exchange]:
    """Keep the requests this task sends until the block ends."""
    exchange = Exchange()
    token = _WATCHED.set(exchange)
    try:
        yield exchange
    finally:
        _WATCHED.reset(token)


def note_sent(future: asyncio.Future[Any]) -> None:
    """Called by the socket protocol for each request it sends (the future its answer
    completes, or the channel's failure fails)."""
    exchange = _WATCHED.get()
    if exchange is not None:
        exchange.sent.append(future)


__all__ = ["Exchange", "note_sent", "watch"]

"""The console's live stream: server-sent events with the plant (and one device) each second.

At most :data:`MAX_STREAMS` at once, each holding one of the listener's connections for
at most :data:`STREAM_LIFETIME_S` (the browser's EventSource reconnects by itself, which
checks the session again). When all are taken, the oldest one that has run
:data:`STREAM_SETTLED_S` ends for the newcomer (a page left open elsewhere, or one a
browser kept alive); a newcomer that finds none is refused and polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from http import HTTPStatus

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from edge_agent import __version__
from edge_agent.console.answers import SECURITY_HEADERS, json_answer, text
from edge_agent.console.views import Views

#: Live streams served at once (each holds one of the listener's connections).
MAX_STREAMS = 8
#: A stream ends after this long; the browser's EventSource reconnects by itself, which
#: re-checks the session.
STREAM_LIFETIME_S = 300.0
STREAM_PERIOD_S = 1.0
#: A stream may be ended for a newer one once it has run this long.
STREAM_SETTLED_S = 60.0
#: A stream whose client stops reading is cut after this long (its slot freed).
STREAM_SEND_TIMEOUT_S = 30.0

#: Lifts the listener's per-exchange deadline for a long-lived answer (a stream).
HoldOpen = Callable[[web.Request], bool]


class LiveStreams:
    """The streams being served, oldest first."""

    def __init__(
        self,
        views: Views,
        still_allowed: Callable[[web.Request], bool],
        hold_open: HoldOpen | None = None,
    ) -> None:
        self.views = views
        #: Whether the request's session may still look (not logged out, not expired).
        self.still_allowed = still_allowed
        self.hold_open = hold_open
        #: Each stream's end signal, with when it began.
        self._streams: dict[asyncio.Event, float] = {}

    def __len__(self) -> int:
        return len(self._streams)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the plant (and one device) once a second."""
        if request.method != "GET":
            # HEAD would prepare nothing and leave a connection without its deadline.
            return json_answer({"error": "GET only"}, HTTPStatus.METHOD_NOT_ALLOWED)
        device = request.query.get("device") or None
        if device is not None and self.views.device(device, events=False) is None:
            return json_answer({"error": "device"}, HTTPStatus.NOT_FOUND)
        if len(self._streams) >= MAX_STREAMS:
            # The newest asker is the likeliest to be looking: the oldest stream ends (a
            # page left open elsewhere, or one a browser kept alive; its EventSource
            # reconnects by itself if it is still shown).
            # Only a stream that has run a while: pages that all want one would otherwise
            # end each other's in turn (each reconnects in seconds). Refused, a page polls.
            settled = time.monotonic() - STREAM_SETTLED_S
            oldest = next(
                (e for e, began in self._streams.items() if not e.is_set() and began < settled),
                None,
            )
            if oldest is None:
                response = json_answer({"error": "busy"}, HTTPStatus.SERVICE_UNAVAILABLE)
                response.headers["Retry-After"] = "30"
                return response
            oldest.set()
        ended = asyncio.Event()
        self._streams[ended] = time.monotonic()
        try:
            stream = EventSourceResponse(
                headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
                ping_interval=15,
                send_timeout=STREAM_SEND_TIMEOUT_S,
            )
            stream.force_close()
            await stream.prepare(request)
            # Only a stream that is under way is exempt from the exchange deadline.
            if self.hold_open is not None and not self.hold_open(request):
                return stream
            async with stream:
                ends = time.monotonic() + STREAM_LIFETIME_S
                while stream.is_connected() and time.monotonic() < ends and not ended.is_set():
                    if not self.still_allowed(request):
                        break  # logged out or expired meanwhile
                    plant = {**self.views.plant(), "version": __version__}
                    await stream.send(text(plant), event="plant")
                    if device is not None:
                        document = self.views.device(device, events=False)
                        if document is not None:
                            await stream.send(text(document), event="device")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ended.wait(), STREAM_PERIOD_S)
            return stream
        except (ConnectionResetError, ConnectionError):
            return web.Response()  # the browser went away; nothing to answer
        finally:
            del self._streams[ended]

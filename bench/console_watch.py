"""A browser's load on the console, without a browser: the device page's live stream.

What the console's device page asks of the agent while it is open: the server-sent
events stream with ``?device=`` (the plant document and one device's tags, once a
second) and, every ``chart_every_s``, one tag's kept history (a click on a chart).
Run on a thread of the harness with its own event loop, so its CPU is not the agent's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class WatchFigures:
    events: int = 0
    event_bytes: int = 0
    histories: int = 0
    errors: int = 0


@contextlib.contextmanager
def watching(
    port: int, device: str, tag: str, chart_every_s: float = 10.0
) -> Iterator[WatchFigures]:
    figures = WatchFigures()
    stop = threading.Event()
    loop = asyncio.new_event_loop()

    async def stream() -> None:
        from aiohttp import ClientSession, ClientTimeout, CookieJar

        base = f"http://127.0.0.1:{port}"
        async with ClientSession(base, cookie_jar=CookieJar(unsafe=True)) as client:
            next_chart = 0.0
            while not stop.is_set():
                try:
                    async with client.get(
                        "/console/api/stream",
                        params={"device": device},
                        timeout=ClientTimeout(total=None, sock_read=10),
                    ) as response:
                        async for line in response.content:
                            if line.startswith(b"data:"):
                                figures.events += 1
                                figures.event_bytes += len(line)
                            now = loop.time()
                            if now >= next_chart:
                                next_chart = now + chart_every_s
                                history = await client.get(
                                    f"/console/api/device/{device}/history", params={"tag": tag}
                                )
                                await history.read()
                                figures.histories += 1
                            if stop.is_set():
                                return
                except Exception:  # noqa: BLE001 - counted; a benchmark goes on
                    figures.errors += 1
                    await asyncio.sleep(1)

    def run() -> None:
        loop.run_until_complete(stream())
        loop.close()

    thread = threading.Thread(target=run, name="console-watch", daemon=True)
    thread.start()
    try:
        yield figures
    finally:
        stop.set()
        thread.join(timeout=15)

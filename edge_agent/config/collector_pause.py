"""Pause Python's cyclic garbage collector while a plant file is read.

Reading a large plant makes hundreds of thousands of objects (YAML nodes, marks, the
built data, the models), none of them in a reference cycle. The collector cannot free
any of them, yet each time the long-lived heap grows by a quarter it walks all of it,
holding the interpreter lock: at 10,000 tags that was four full collections of up to
0.2 s each (0.5 s on a loaded machine), and every one stopped the event loop beside a
reload's worker thread. Paused, the parse takes half the time and the loop never waits
more than the thread switch interval. Reference counting still frees everything as
usual; the collector resumes (if it was running) when the last reader finishes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_readers = 0
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector is off inside; nestable and safe from several threads at once."""
    global _readers, _resume
    with _lock:
        if _readers == 0:
            _resume = gc.isenabled()
            gc.disable()
        _readers += 1
    try:
        yield
    finally:
        with _lock:
            _readers -= 1
            if _readers == 0 and _resume:
                gc.enable()

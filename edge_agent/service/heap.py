"""Keep Python's cyclic garbage collector off the objects that live as long as the config.

A plant of 100,000 tags is half a million objects the collector tracks (the config
models, the catalog, the read plans, the runners), and none of them dies while the
config runs. Yet every full collection walks them all with the interpreter lock held:
0.2 to 0.6 s during which nothing is polled or sent, the tail of the latency figures.
:func:`settle`, called once the agent is built and before its first poll, moves them to
the collector's permanent generation (``gc.freeze``), where no collection looks.
Reference counting still frees them as usual.

A reload replaces part of them; the replaced runners may sit in reference cycles only
the collector can free, so after a reload that was applied :func:`resettle` thaws
everything, collects once (one pause, at the reload) and freezes what is left.

Only the service settles (:func:`~edge_agent.service.supervisor.serve`, what
``edge-agent run`` runs): a test process that runs many agents one after another keeps
the collector as it is.
"""

from __future__ import annotations

import gc

_settled = False


def settle() -> None:
    """Freeze what exists now: call once the agent is built, before it starts. A
    collection first, so that no cycle left by building (none is known) is frozen for
    the life of the process."""
    global _settled
    gc.collect()
    gc.freeze()
    _settled = True


def resettle() -> None:
    """After an applied reload: free the old config's cycles, freeze the new one.
    A no-op unless :func:`settle` was called in this process."""
    if not _settled:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()

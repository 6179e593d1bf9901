"""The service keeps the collector off its long-lived objects and frees a reload's cycles.

Each case runs in a fresh interpreter: freezing is process-wide, and the test process
must keep its collector as it is.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.plant import ROOT

_CASE = """
import gc, weakref
from edge_agent.service import heap

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

heap.resettle()  # nothing settled yet: a no-op
assert gc.get_freeze_count() == 0
kept = [Node() for _ in range(100)]
heap.settle()
frozen = gc.get_freeze_count()
assert frozen >= 100, frozen
gc.collect()
assert gc.get_freeze_count() == frozen  # a collection leaves them where they are
old = cycle()  # the runners a reload replaces, in a cycle only the collector frees
gc.freeze()  # as if it had been there at settle()
del kept
gc.collect()
assert old() is not None  # frozen: never collected
heap.resettle()
assert old() is None  # the reload's collection freed it
assert gc.get_freeze_count() > 0
print("ok")
"""


def test_settle_freezes_and_a_reload_frees_the_old_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CASE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

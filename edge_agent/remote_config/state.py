"""The report on ``edge/{plant}/config/state`` (retained, QoS 1): what became of the last
document, and which version runs now.

One JSON object::

    {"plant": "line-7", "version": 12, "sha256": "9b1d...", "document": "5e0a...",
     "status": "applied",
     "reason": "", "problems": [], "time": "2026-03-01T08:00:02.114Z",
     "running_version": 12, "takes_effect_at_next_start": [], "devices_not_back": []}

``status`` is ``applied``, ``refused`` (nothing changed; ``reason`` says which check,
``problems`` the ``config/set v12:40: ...`` lines of a file that failed validation, else
the reason again), ``rolled_back`` (applied, then undone: ``devices_not_back``) or
``rollback_failed`` (the last known good could not be put back; the document stays)
or ``not_written`` (applied, but the plant file could not be written and the previous
config could not be put back: the next start runs the previous file).
``version``/``sha256`` are the document's and ``document`` is the SHA-256 of its
signature, which names that very document (``config push`` waits for the report about
its own, not someone else's); all three are null unless the signature and the file's
hash were verified (a forged copy carrying a real signature must not get the real
document reported refused). ``envelope`` (refusals only) is the SHA-256 of the message's
exact bytes: ``config push`` also takes a refusal of the very bytes it published (a key
the agent does not know, another plant), which only those bytes can earn.
``running_version`` is the version of the plant file running now (null: a local file).
Every text is passed through the secret redaction first: a problem quoting a value that
came from ``${VAR}`` shows ``***``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Final

from edge_agent.model import iso_utc_ms
from edge_agent.redaction import redact

APPLIED: Final = "applied"
REFUSED: Final = "refused"
ROLLED_BACK: Final = "rolled_back"
ROLLBACK_FAILED: Final = "rollback_failed"
NOT_WRITTEN: Final = "not_written"


def set_topic(plant: str) -> str:
    return f"edge/{plant}/config/set"


def state_topic(plant: str) -> str:
    return f"edge/{plant}/config/state"


def state_payload(
    *,
    plant: str,
    status: str,
    version: int | None,
    sha256: str | None,
    running_version: int | None,
    document: str | None = None,
    envelope: str | None = None,
    reason: str = "",
    problems: Sequence[str] = (),
    later: Sequence[str] = (),
    devices_not_back: Sequence[str] = (),
    now_ns: int | None = None,
) -> bytes:
    report = {
        "plant": plant,
        "version": version,
        "sha256": sha256,
        "document": document,
        "status": status,
        "reason": redact(reason),
        "problems": [redact(p) for p in problems],
        "time": iso_utc_ms(time.time_ns() if now_ns is None else now_ns),
        "running_version": running_version,
        "takes_effect_at_next_start": list(later),
        "devices_not_back": list(devices_not_back),
    }
    if envelope is not None:
        report["envelope"] = envelope
    return json.dumps(report, ensure_ascii=False).encode("utf-8")

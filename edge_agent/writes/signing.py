"""Signatures, time windows and ids: a captured command cannot be forged or replayed.

- :func:`signature_ok`: HMAC-SHA256 of the exact command text (the signed form's
  canonical bytes, as they arrived: nothing to canonicalise on either side) with the
  plant's shared key, compared in constant time with the hex signature sent (lower or
  upper case).
- :func:`time_refusal`: a command is valid from ``issued_at - max_age`` (clocks
  differ) to ``issued_at + max_age`` and never at or after its own ``expires_at``.
- :class:`IdCache`: every id handled is remembered for ``2 x max_age``, the longest a
  copy of it could still pass the time window (a command may be issued up to
  ``max_age`` in the future and is then valid ``max_age`` after that), so a copy is
  refused however it comes back. Seeded from the audit log at start, so a restart
  opens no window. Memory is bounded: expired ids go first; when the cap is reached by
  ids that have not expired, new commands are refused rather than an id forgotten.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Mapping

from edge_agent.model import iso_utc_ms

_NS = 1_000_000_000
#: Ids remembered at most (a command per 2 x max_age each). At the default max_age of
#: 30 s this is 1,600 commands a second, far beyond any plant's use of writes.
MAX_IDS = 100_000
_HEX = frozenset("0123456789abcdefABCDEF")


def signature_ok(key: str, canonical: bytes, signature: str) -> bool:
    """True when ``signature`` is the hex HMAC-SHA256 of ``canonical`` with ``key``.

    Constant time in the signature's content (:func:`hmac.compare_digest`); a signature
    that is not 64 hex digits is simply not equal.
    """
    expected = hmac.new(key.encode("utf-8"), canonical, hashlib.sha256).hexdigest()
    given = signature.strip()
    if len(given) != len(expected) or not set(given) <= _HEX:
        # Compare anyway so a malformed signature costs what a wrong one does.
        hmac.compare_digest(expected, expected)
        return False
    return hmac.compare_digest(expected, given.lower())


def time_refusal(
    issued_at_ns: int | None, expires_at_ns: int | None, now_ns: int, max_age_s: float
) -> str:
    """Why a command is not valid at ``now_ns``; ``""`` when it is."""
    max_age_ns = int(max_age_s * _NS)
    if issued_at_ns is not None:
        age = now_ns - issued_at_ns
        if age > max_age_ns:
            return (
                f"too old: issued {age / _NS:.1f} s ago ({iso_utc_ms(issued_at_ns)}), "
                f"commands are valid for max_age {max_age_s:g} s"
            )
        if -age > max_age_ns:
            return (
                f"issued in the future (clock skew?): {iso_utc_ms(issued_at_ns)} is "
                f"{-age / _NS:.1f} s ahead of the agent's clock, more than max_age "
                f"{max_age_s:g} s"
            )
    if expires_at_ns is not None and expires_at_ns <= now_ns:
        return f"expired at {iso_utc_ms(expires_at_ns)}"
    return ""


class IdCache:
    """Ids handled recently (id -> when, and with what outcome), oldest first."""

    def __init__(self, max_age_s: float, cap: int = MAX_IDS) -> None:
        self.max_age_s = max_age_s
        self.cap = cap
        self._seen: OrderedDict[str, tuple[int, str]] = OrderedDict()

    @property
    def keep_ns(self) -> int:
        """How long an id is remembered."""
        return int(2 * self.max_age_s * _NS)

    def __len__(self) -> int:
        return len(self._seen)

    def seed(self, ids: Mapping[str, tuple[int, str]]) -> None:
        """Remember ids from the audit log (id -> (time ns, outcome)), oldest first."""
        for id_, (time_ns, outcome) in sorted(ids.items(), key=lambda item: item[1][0]):
            if id_ not in self._seen:
                self._seen[id_] = (time_ns, outcome)
        self._seen = OrderedDict(sorted(self._seen.items(), key=lambda item: item[1][0]))

    def refusal(self, id_: str, now_ns: int) -> str:
        """Why ``id_`` may not be handled now (seen before; too many ids); ``""`` if it may."""
        self._expire(now_ns)
        seen = self._seen.get(id_)
        if seen is not None:
            when, outcome = seen
            shown = f"with outcome {outcome}" if outcome else "still being handled"
            return f"duplicate id (already handled at {iso_utc_ms(when)} {shown})"
        if len(self._seen) >= self.cap:
            return (
                f"too many commands: the replay guard remembers the {self.cap} ids of the "
                f"last {2 * self.max_age_s:g} s and forgets none before its time; "
                "try again later"
            )
        return ""

    def remember(self, id_: str, now_ns: int, outcome: str = "") -> None:
        """``id_`` is handled from ``now_ns`` (``outcome`` "" while it is in progress)."""
        previous = self._seen.get(id_)
        self._seen[id_] = (previous[0] if previous else now_ns, outcome)

    def _expire(self, now_ns: int) -> None:
        oldest_kept = now_ns - self.keep_ns
        while self._seen:
            first, (when, _) = next(iter(self._seen.items()))
            if when > oldest_kept:
                return
            del self._seen[first]

"""Signatures, the time window and the id cache, on their own."""

from __future__ import annotations

import hashlib
import hmac

from edge_agent.writes.signing import IdCache, signature_ok, time_refusal

NS = 1_000_000_000


def _sign(key: str, text: bytes) -> str:
    return hmac.new(key.encode(), text, hashlib.sha256).hexdigest()


def test_a_signature_is_the_hmac_of_the_exact_bytes() -> None:
    text = b'{"id":"a","tag":"x","value":1}'
    good = _sign("key-1", text)
    assert signature_ok("key-1", text, good)
    assert signature_ok("key-1", text, good.upper())
    assert not signature_ok("key-2", text, good)
    assert not signature_ok("key-1", text + b" ", good), "one byte more is another command"
    assert not signature_ok("key-1", text, good[:-1])
    assert not signature_ok("key-1", text, "g" * 64)
    assert not signature_ok("key-1", text, "")


def test_the_time_window() -> None:
    now = 1_000 * NS
    assert time_refusal(None, None, now, 30) == ""
    assert time_refusal(now - 30 * NS, None, now, 30) == ""
    assert time_refusal(now - 30 * NS - 1, None, now, 30).startswith("too old")
    assert time_refusal(now + 30 * NS, None, now, 30) == ""
    assert time_refusal(now + 31 * NS, None, now, 30).startswith("issued in the future")
    assert time_refusal(None, now + 1, now, 30) == ""
    assert time_refusal(None, now, now, 30).startswith("expired at")


def test_the_id_cache_drops_expired_ids_first() -> None:
    cache = IdCache(max_age_s=1, cap=3)
    for n in range(3):
        assert cache.refusal(f"i{n}", n * NS // 2) == ""
        cache.remember(f"i{n}", n * NS // 2, "applied")
    # All three within 2 x max_age: the cap is reached, nothing is forgotten early.
    refusal = cache.refusal("new", NS + NS // 2)
    assert refusal.startswith("too many commands: the replay guard remembers the 3 ids")
    assert cache.refusal("i0", NS + NS // 2).startswith("duplicate id")
    # i0 (seen at 0) expires at 2 s: room for one more.
    assert cache.refusal("new", 2 * NS) == ""
    assert len(cache) == 2


def test_seeded_ids_are_kept_in_time_order() -> None:
    cache = IdCache(max_age_s=1)
    cache.seed({"late": (3 * NS, "applied"), "early": (1 * NS, "refused")})
    cache.remember("now", 3 * NS)
    assert cache.refusal("late", int(4.5 * NS)).startswith("duplicate id")
    assert cache.refusal("early", int(4.5 * NS)) == ""  # expired at 3 s, dropped first
    assert "still being handled" in cache.refusal("now", int(4.5 * NS))

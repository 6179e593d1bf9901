"""Fresh-eyes review of the console's latest changes (issue 15): each test shows one finding.

Each test asserts what SHOULD hold and fails on main at the time of the review.
"""

from __future__ import annotations

from edge_agent.config.loader import parse_config
from edge_agent.console.ring import LiveRing
from edge_agent.console.views import redacted_config
from edge_agent.model import Quality, SampleBatch, Value

NS = 1_000_000_000


def _changes(t_s: float, changed: dict[str, Value], group: str = "sub") -> SampleBatch:
    """A subscription's batch: only what changed, in a list made for this batch (as
    drivers/opcua/batches.py change_batches builds them)."""
    names = list(changed)
    return SampleBatch(
        "ua",
        group,
        int(t_s * NS),
        names,
        list(changed.values()),
        [Quality.GOOD] * len(names),
        [""] * len(names),
        [int(t_s * NS)] * len(names),
    )


def test_the_plant_key_value_of_a_subscription_is_its_last_change() -> None:
    """views.Views._key reads the key value as ring.history(most=1): the newest batch
    only. A subscription's newest batch holds only what changed, so the plant page shows
    no value for a key tag that changed a second ago (it did before 44c6b1c)."""
    ring = LiveRing(history_s=600, max_points=600)
    ring.append(_changes(1, {"power": 12.5, "state": 1}))
    ring.append(_changes(2, {"state": 2}))  # power steady this second
    newest = ring.history("ua", "power", most=1)
    assert [p.value for p in newest] == [12.5]


def test_a_sparkline_of_a_subscription_keeps_its_tags_points() -> None:
    """series(most=120) thins the BATCHES, then picks the tag: when the key tag changes
    every 5th batch, the sparkline is empty or full depending on the second."""
    ring = LiveRing(history_s=3600, max_points=1000)
    for t in range(600):
        changed: dict[str, Value] = {"state": t}
        if t % 5 == 0:
            changed["power"] = float(t)
        ring.append(_changes(t, changed))
    points = ring.series("ua", "power", most=120)
    assert len(points) >= 60, f"{len(points)} of the 120 kept power points drawn"


def test_the_tag_index_cache_keeps_no_batch_the_ring_dropped() -> None:
    """LiveRing._index caches by id(names) and holds the names: a subscription's batches
    each have their own list, so up to 10,000 (names, dict) pairs stay alive after the
    ring dropped their batches: memory outside history_memory (a 1,000-tag change batch
    is ~40 KB of list and dict: ~400 MB at the cap)."""
    ring = LiveRing(history_s=3600, max_points=10)
    names = [f"t{i}" for i in range(50)]
    for t in range(1_000):
        ring.append(_changes(t, {name: float(t) for name in names}))
        ring.series("ua", "t0", most=120)  # the plant page's sparkline, once a second
    assert len(ring._indexes) <= 20, f"{len(ring._indexes)} indexes held for 10 kept batches"


def test_a_steady_subscription_tag_keeps_its_value_past_the_history_window() -> None:
    """A subscription reports a value once and then only its changes (the alive batches
    that prove it still holds never reach the ring). After `history` (10 min) the device
    page shows a steady setpoint with no value and no quality."""
    # The console tells the ring which groups report changes only (TagCatalog).
    ring = LiveRing(history_s=600, max_points=600, change_groups={("ua", "sub")})
    ring.append(_changes(0, {"setpoint": 80.0, "pv": 79.0}))
    for t in range(1, 700):
        ring.append(_changes(t, {"pv": 79.0 + t / 1000}))
    latest = ring.latest("ua", {"sub": ("setpoint", "pv")})
    assert "setpoint" in latest, "the setpoint's value is gone from the device page"
    kept, index = latest["setpoint"]
    assert kept.values[index] == 80.0
    kept, index = latest["pv"]
    assert kept.values[index] == 79.0 + 699 / 1000  # the newest change, not a held one
    # Also when the ring is full by count rather than by time.
    small = LiveRing(history_s=86_400, max_points=5, change_groups={("ua", "sub")})
    small.append(_changes(0, {"setpoint": 80.0, "pv": 1.0}))
    for t in range(1, 50):
        small.append(_changes(t, {"pv": float(t)}))
    kept, index = small.latest("ua", {"sub": ("setpoint", "pv")})["setpoint"]
    assert kept.values[index] == 80.0


CONFIG = """
plant: {name: p}
state_dir: /tmp/edge-agent-test-state
devices:
  - name: m
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - {name: g, interval: 1s, tags: [{name: t, address: 0}]}
outbox:
  max_age: 14d
"""


def test_a_long_duration_on_the_config_page_reads_back() -> None:
    """views.redacted_config writes durations as f"{x:g}s": 14 days is '1.2096e+06s',
    which the plant file's duration syntax refuses (and precision goes past 6 digits)."""
    running = parse_config(CONFIG, "plant.yaml", env={})
    shown = redacted_config(running)
    assert parse_config(shown, "shown.yaml", env={}) == running


def _plant(tags: int) -> str:
    listed = ", ".join(f"{{name: t{i}, address: {i}}}" for i in range(tags))
    return CONFIG.replace("[{name: t, address: 0}]", f"[{listed}]").replace(
        "outbox:\n  max_age: 14d\n", ""
    )


async def test_history_memory_holds_after_a_reload_that_grows_the_plant() -> None:
    """Console computes points per tag once, from the plant it starts with; a reload that
    adds devices keeps the console (the supervisor remakes it only when service.console
    or the listener changes), so the ring keeps the small plant's points for every tag
    of the big one: 64 MiB for 100 tags becomes 600 x 10,000 x 50 B = 300 MB."""
    from types import SimpleNamespace
    from typing import Any, cast

    from edge_agent.config.console import ConsoleConfig
    from edge_agent.console.app import Console
    from edge_agent.console.ring import BYTES_PER_VALUE

    memory = 1024 * 1024
    agent = SimpleNamespace(config=parse_config(_plant(10), "plant.yaml", env={}))
    console = Console(
        cast(Any, agent),
        cast(Any, None),
        ConsoleConfig(history_memory=memory, history_points=100_000, history=86_400),
        login_required=False,
        secure=False,
    )
    try:
        agent.config = parse_config(_plant(200), "plant.yaml", env={})  # the reload
        names = tuple(f"t{i}" for i in range(200))
        for t in range(300):
            console.keep(  # as the pipeline hands it each batch
                SampleBatch(
                    "m", "g", t * NS, names, [float(t)] * 200, [Quality.GOOD] * 200, [""] * 200
                )
            )
        held = console.ring.kept_values * BYTES_PER_VALUE
        assert held <= memory, f"{held / memory:.1f} x history_memory kept"
    finally:
        await console.stop()


def test_a_short_password_in_a_url_is_not_on_the_config_page() -> None:
    """redacted_config masks secret-named fields, then replaces registered secrets in the
    text; secrets under MIN_SECRET_LENGTH (4) are never searched for, so a URL's short
    password (not a secret-named field) reaches every viewer. summary.py uses
    redact_urls for this; the config page does not."""
    text = CONFIG.replace("outbox:\n  max_age: 14d\n", "") + (
        "sinks:\n"
        "  - name: i\n"
        "    type: influxdb\n"
        '    url: "http://edge:abc@127.0.0.1:8086"\n'
        "    org: o\n"
        "    bucket: b\n"
        "    token: tok-5678-xyz\n"
    )
    shown = redacted_config(parse_config(text, "plant.yaml", env={}))
    assert "edge:abc@" not in shown

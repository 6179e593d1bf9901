"""The console's pure parts: the ring's bounds, the login brake, sessions, language, redaction."""

from __future__ import annotations

import asyncio
import logging

import pytest
import structlog
from aiohttp.test_utils import make_mocked_request

from edge_agent.config.console import ConsoleConfig, ConsoleUser, is_loopback
from edge_agent.config.loader import parse_config
from edge_agent.config.service import ServiceConfig
from edge_agent.console.answers import language, static_files
from edge_agent.console.auth import FREE_FAILURES, Auth, LoginBrake, hash_password
from edge_agent.console.logring import LogRing
from edge_agent.console.ring import LiveRing
from edge_agent.console.views import redacted_config
from edge_agent.logs import configure_logging
from edge_agent.metrics.contract import MetricInfo
from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.redaction import forget_secrets, register_secrets

NS = 1_000_000_000
NAMES = ("a", "b")


def _batch(t_s: float, a: float, group: str = "g", names: tuple[str, ...] = NAMES) -> SampleBatch:
    return SampleBatch(
        "dev",
        group,
        int(t_s * NS),
        names,
        [a, a * 2][: len(names)],
        [Quality.GOOD] * len(names),
        [""] * len(names),
    )


def test_ring_keeps_the_history_window_and_no_more_points() -> None:
    ring = LiveRing(history_s=10, max_points=1000)
    for t in range(100):
        ring.append(_batch(t, float(t)))
    points = ring.history("dev", "a")
    assert [p.value for p in points] == [float(t) for t in range(89, 100)]  # 10 s back
    small = LiveRing(history_s=3600, max_points=5)
    for t in range(100):
        small.append(_batch(t, float(t)))
    assert [p.value for p in small.history("dev", "b")] == [2.0 * t for t in range(95, 100)]
    assert small.kept_values == 10


def test_ring_latest_walks_back_a_subscription_until_every_tag_is_seen() -> None:
    ring = LiveRing(history_s=3600, max_points=100)
    ring.append(_batch(1, 1.0))  # both tags
    ring.append(_batch(2, 5.0, names=("a",)))  # only a changed
    latest = ring.latest("dev", {"g": NAMES})
    batch_a, index_a = latest["a"]
    batch_b, index_b = latest["b"]
    assert batch_a.values[index_a] == 5.0
    assert batch_b.values[index_b] == 2.0  # from the first batch


def test_ring_counts_polls_and_keeps_metric_batches_apart() -> None:
    ring = LiveRing(history_s=3600, max_points=100)
    for t in range(10):
        ring.append(_batch(t, 1.0))
    assert ring.polls_since("dev", 7 * NS) == 3
    info = MetricInfo("energy", "15m", (0, 900 * NS))
    metric = SampleBatch("dev", "metrics:15m", 0, ("energy_kwh",), [1.0], [Quality.GOOD], [""])
    metric.attributes.update(info.attributes())
    ring.append(metric)
    assert ring.metric_batches() == [metric]
    assert ring.polls_since("dev", 0) == 10  # the metric batch is no poll
    historical = _batch(20, 3.0)
    historical.historical = True
    ring.append(historical)
    assert ring.history("dev", "a")[-1].value == 1.0
    ring.keep_only({"dev"})
    assert len(ring.history("dev", "a")) == 10
    ring.keep_only({"other"})
    assert ring.history("dev", "a") == []
    assert ring.metric_batches() == [metric]  # meters are not pollers
    ring.forget_device("dev")
    assert ring.metric_batches() == []


def test_brake_waits_after_free_failures_and_doubles() -> None:
    now = [0.0]
    brake = LoginBrake(clock=lambda: now[0])
    keys = ("addr:10.0.0.9", "user:alice")
    for _ in range(FREE_FAILURES):
        brake.failed(keys)
    assert brake.wait_s(keys) == 0
    brake.failed(keys)
    assert brake.wait_s(keys) == 1.0
    assert brake.wait_s(("user:alice",)) == 1.0  # another address guessing the same user
    now[0] = 1.0
    brake.failed(keys)
    assert brake.wait_s(keys) == 2.0
    brake.succeeded(keys)
    assert brake.wait_s(keys) == 0
    now[0] = 1000.0  # old failures age out of the window
    for _ in range(FREE_FAILURES):
        brake.failed(("addr:x",))
    assert brake.wait_s(("addr:x",)) == 0


async def test_login_sessions_expire_and_permissions_follow_the_user() -> None:
    now = [0.0]
    hashed = hash_password("a long password")
    config = ConsoleConfig(
        users=[
            ConsoleUser(name="alice", password_hash=hashed, commissioning=True),
            ConsoleUser(name="bob", password_hash=hashed),
        ],
        session_timeout=60,
    )
    auth = Auth(config, login_required=True, clock=lambda: now[0])
    try:
        anonymous = auth.new_session()
        assert anonymous.permissions == frozenset()
        session, wait = await auth.login("alice", "a long password", "127.0.0.1")
        assert session is not None
        assert wait == 0
        assert session.permissions == {"view", "commission"}
        assert auth.session(session.token) is session
        bob, _ = await auth.login("bob", "a long password", "127.0.0.1")
        assert bob is not None
        assert bob.permissions == {"view"}
        refused, _ = await auth.login("mallory", "a long password", "127.0.0.1")
        assert refused is None  # an unknown user costs a hash check too
        assert auth.failed_logins == 1
        now[0] = 61.0
        assert auth.session(session.token) is None  # idle too long
        assert not Auth.csrf_ok(anonymous, None)
        assert not Auth.csrf_ok(anonymous, "x")
        assert Auth.csrf_ok(anonymous, anonymous.csrf)
    finally:
        await auth.close()


def test_without_users_a_loopback_visitor_may_look() -> None:
    auth = Auth(ConsoleConfig(), login_required=False)
    assert auth.new_session().permissions == {"view"}
    asyncio.run(auth.close())


@pytest.mark.parametrize(
    ("header", "cookie", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", None, "en"),
        ("de-DE,de;q=0.9,zh;q=0.5", None, "zh"),
        ("fr", None, "en"),
        ("", None, "en"),
        ("zh-CN", "en", "en"),
        ("en", "zh", "zh"),
        ("zh;q=bogus,en", None, "en"),
    ],
)
def test_language_from_the_switch_then_accept_language(
    header: str, cookie: str | None, expected: str
) -> None:
    headers = {"Accept-Language": header}
    if cookie:
        headers["Cookie"] = f"edge_lang={cookie}"
    assert language(make_mocked_request("GET", "/", headers=headers)) == expected


def test_off_loopback_a_console_needs_users() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.10")
    assert not is_loopback("gateway.local")
    with pytest.raises(ValueError, match=r"add service\.console\.users"):
        ServiceConfig.model_validate({"health": {"listen": "0.0.0.0"}, "console": {}})
    with pytest.raises(ValueError, match=r"add service\.health"):
        ServiceConfig.model_validate({"console": {}})
    with pytest.raises(ValueError, match="not an argon2 hash"):
        ConsoleUser(name="a", password_hash="hunter2")


PLANT = """
plant: {name: p}
state_dir: /tmp/edge-agent-test-state
devices:
  - name: m
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - {name: g, interval: 1s, tags: [{name: t, address: 0}]}
sinks:
  - {name: b, type: mqtt, host: 127.0.0.1, username: u, password: "pw-in-the-file-1234"}
  - name: i
    type: influxdb
    url: "http://user:url-secret-99@127.0.0.1:8086"
    org: o
    bucket: b
    token: tok-5678-xyz
service:
  health: {port: 0}
  console:
    users: [{name: alice, password_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"}]
"""


def test_the_config_page_shows_no_secret() -> None:
    config = parse_config(PLANT, "plant.yaml", env={})
    register_secrets(["pw-in-the-file-1234", "tok-5678-xyz", "url-secret-99"])
    try:
        text = redacted_config(config)
    finally:
        forget_secrets()
    for secret in ("pw-in-the-file-1234", "tok-5678-xyz", "url-secret-99", "aGFzaGhhc2g"):
        assert secret not in text
    assert "password: '***'" in text
    assert "name: m" in text


def test_log_ring_keeps_warnings_redacted() -> None:
    configure_logging("info", json=True)
    ring = LogRing(kept=3)
    ring.install()
    register_secrets(["sekrit-value-42"])
    try:
        log = structlog.get_logger("edge_agent.test")
        log.info("not kept")
        for i in range(5):
            log.warning("device offline", device=f"d{i}", error="auth sekrit-value-42 refused")
        logging.getLogger("a.library").error("library %s", "trouble")
    finally:
        ring.remove()
        forget_secrets()
    records = list(ring.records)
    assert len(records) == 3
    assert records[-1]["logger"] == "a.library"
    assert records[-1]["event"] == "library trouble"
    assert records[0]["event"] == "device offline"
    assert "device=d3" in records[0]["fields"]
    assert all("sekrit" not in r["fields"] for r in records)


def test_static_files_are_read_once_with_etags(tmp_path: object) -> None:
    files = static_files()
    assert "index.html" in files
    assert "login.html" in files
    _body, content_type, etag = files["index.html"]
    assert content_type.startswith("text/html")
    assert etag.startswith('"')
    assert all(not name.endswith(".py") for name in files)


def test_kept_history_fits_its_memory_budget() -> None:
    import random
    import tracemalloc

    from edge_agent.console.ring import BYTES_PER_VALUE, points_within

    assert points_within(64 * 1024 * 1024, 10_000, 600) == 134
    assert points_within(64 * 1024 * 1024, 10, 600) == 600
    assert points_within(1024 * 1024, 10_000_000, 600) == 2
    names = tuple(f"t{i}" for i in range(500))
    ring = LiveRing(history_s=3600, max_points=50)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for t in range(50):
            values: list[Value] = [random.random() for _ in names]
            ring.append(
                SampleBatch("d", "g", t * NS, names, values, [Quality.GOOD] * 500, [""] * 500)
            )
        per_value = (tracemalloc.get_traced_memory()[0] - before) / (50 * 500)
    finally:
        tracemalloc.stop()
    assert per_value <= BYTES_PER_VALUE


def test_a_damaged_hash_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="damaged argon2 hash"):
        ConsoleUser(name="a", password_hash="$argon2id$garbage")
    good = hash_password("a long password")
    assert ConsoleUser(name="a", password_hash=good).password_hash == good


def test_commissioning_opens_only_terminals() -> None:
    import os
    import pty

    from edge_agent.console.commissioning import _is_serial_port

    leader, follower = pty.openpty()
    try:
        assert _is_serial_port(os.ttyname(follower))
    finally:
        os.close(leader)
        os.close(follower)
    for path in ("/dev/watchdog", "/dev/null", "/dev/tty-not-there", "/etc/passwd", "/dev/sda",
                 "/dev/tty", "/dev/tty1", "/dev/ttyS99999"):  # fmt: skip
        assert not _is_serial_port(path)


def test_kept_history_leaves_the_garbage_collector_little_to_walk() -> None:
    import gc

    ring = LiveRing(history_s=3600, max_points=100)
    names = tuple(f"t{i}" for i in range(200))
    for t in range(100):
        ring.append(
            SampleBatch(
                "d", "g", t * NS, names, [t + i / 7 for i in range(200)],
                [Quality.GOOD] * 200, [""] * 200,
            )
        )  # fmt: skip
    gc.collect()
    kept = list(ring._groups[("d", "g")])
    # The 60,000 values sit in tuples and bytes the collector does not track.
    assert not any(gc.is_tracked(k.values) or gc.is_tracked(k.reasons) for k in kept)
    assert ring.history("d", "t5")[-1].value == 99 + 5 / 7
    assert len(ring.history("d", "t5", most=10)) <= 10
    assert ring.history("d", "t5", most=10)[-1].timestamp_ns == 99 * NS  # the newest is in


def test_check_says_where_the_console_is_and_who_may_use_it() -> None:
    from edge_agent.summary import render_summary

    config = parse_config(PLANT, "plant.yaml", env={})
    text = render_summary(config, "plant.yaml")
    assert "health endpoint http://127.0.0.1:0/healthz" in text
    assert (
        "web console http://127.0.0.1:0/console/: login required (1 user), commissioning off"
        in text
    )


def test_the_config_page_text_is_a_plant_file_of_the_running_config(tmp_path: object) -> None:
    """Durations as the file writes them (a bare number is refused); without secrets the
    text reads back as the very config that runs (the new-user trial copied it back)."""
    from tests.plant import CONFIG_FILE

    text = CONFIG_FILE.read_text().replace("${EDGE_AGENT_STATE:-./state}", "/tmp/edge-state")
    running = parse_config(text, "plant.yaml", env={})
    shown = redacted_config(running)
    assert "interval: 1s" in shown
    assert parse_config(shown, "shown.yaml", env={}) == running


def test_the_brake_sees_an_ipv6_host_by_its_network() -> None:
    from edge_agent.console.auth import _client

    assert _client("2001:db8:1:2::5") == _client("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert _client("2001:db8:1:3::5") != _client("2001:db8:1:2::5")
    assert _client("::ffff:10.0.0.7") == "10.0.0.7"
    assert _client("10.0.0.7") == "10.0.0.7"
    assert _client("?") == "?"

"""sd_notify over a real AF_UNIX datagram socket that the test owns (path and abstract name)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.service.sdnotify import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    try:
        yield str(path), sock
    finally:
        sock.close()


def _fields(sock: socket.socket) -> dict[str, str]:
    message = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in message.split("\n"))


def test_ready_status_watchdog_reloading_stopping_arrive_as_systemd_expects(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, sock = notify_socket
    notifier = Notifier(path)
    try:
        assert notifier.ready("5/5 devices online;\nbacklog 0 batches")
        assert _fields(sock) == {"READY": "1", "STATUS": "5/5 devices online; backlog 0 batches"}
        assert notifier.watchdog()
        assert _fields(sock) == {"WATCHDOG": "1"}
        assert notifier.reloading()
        reloading = _fields(sock)
        assert reloading["RELOADING"] == "1"
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert notifier.stopping("stopping")
        assert _fields(sock) == {"STOPPING": "1", "STATUS": "stopping"}
        assert notifier.sent == 4
    finally:
        notifier.close()


def test_abstract_socket_name_with_leading_at() -> None:
    name = f"edge-agent-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    notifier = Notifier("@" + name)
    try:
        assert notifier.status("hello")
        assert _fields(sock) == {"STATUS": "hello"}
    finally:
        notifier.close()
        sock.close()


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert notifier.watchdog_seconds is None
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert notifier.sent == 0


def test_watchdog_interval_is_read_only_for_this_process() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_environment(env).watchdog_seconds == 30.0
    mine = Notifier.from_environment({**env, "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_seconds == 30.0
    # The variables were inherited from a parent that systemd watches: not ours to ping.
    theirs = Notifier.from_environment({**env, "WATCHDOG_PID": str(os.getpid() + 1)})
    assert theirs.watchdog_seconds is None
    assert Notifier.from_environment({**env, "WATCHDOG_USEC": "0"}).watchdog_seconds is None


def test_a_vanished_socket_is_counted_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    try:
        assert not notifier.watchdog()
        assert not notifier.watchdog()
        assert notifier.failures == 2
    finally:
        notifier.close()

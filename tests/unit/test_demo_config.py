"""``edge-agent demo -c COPY``: the plant the demo runs, made from a copy of the demo plant
that a plant engineer edited (a trial of issue 18: a command key from the environment, a
console with users). Config only: nothing is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config.console import ConsoleConfig
from edge_agent.config.service import HealthConfig
from edge_agent.demo import _demo_config, demo_config_path
from tests.console_support import PASSWORD_HASH

PORT = 18090


def _copy(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "my-demo.yaml"
    path.write_text(demo_config_path().read_text() + extra)
    return path


def test_a_copy_takes_variables_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``${COMMAND_KEY}`` exported in the shell (was: "environment variable COMMAND_KEY
    is not set": the demo loaded with EDGE_AGENT_STATE only)."""
    monkeypatch.setenv("COMMAND_KEY", "k" * 32)
    monkeypatch.setenv("EDGE_AGENT_STATE", "/somewhere/else")
    copy = _copy(tmp_path, "commands:\n  signatures: required\n  key: ${COMMAND_KEY}\n")
    config = _demo_config(copy, None, tmp_path / "state", PORT)
    assert config.commands.key is not None
    assert config.commands.signatures == "required"
    assert config.state_dir == tmp_path / "state"  # the demo's own, not the shell's


def test_a_copy_with_console_users_and_no_listener_gets_the_demo_s(tmp_path: Path) -> None:
    users = (
        "service:\n  console:\n    users:\n"
        f"      - {{name: alice, password_hash: '{PASSWORD_HASH}', writes: true}}\n"
    )
    config = _demo_config(_copy(tmp_path, users), None, tmp_path / "state", PORT)
    assert config.service.health == HealthConfig(listen="127.0.0.1", port=PORT)
    console = config.service.console
    assert console is not None
    assert [(u.name, u.writes) for u in console.users] == [("alice", True)]


def test_a_copy_s_own_listener_is_kept(tmp_path: Path) -> None:
    own = (
        "service:\n  health: {listen: 127.0.0.1, port: 18123}\n  console:\n    users:\n"
        f"      - {{name: alice, password_hash: '{PASSWORD_HASH}'}}\n"
    )
    config = _demo_config(_copy(tmp_path, own), None, tmp_path / "state", PORT)
    assert config.service.health == HealthConfig(listen="127.0.0.1", port=18123)
    assert config.service.console is not None
    assert config.service.console.users[0].name == "alice"


def test_the_demo_plant_gets_a_console_without_users(tmp_path: Path) -> None:
    config = _demo_config(None, None, tmp_path / "state", PORT)
    assert config.service.health == HealthConfig(listen="127.0.0.1", port=PORT)
    assert config.service.console == ConsoleConfig()


def test_without_a_console_port_a_copy_s_console_still_needs_its_listener(
    tmp_path: Path,
) -> None:
    """``--console-port 0`` (no console from the demo): the copy's own rule stands."""
    from edge_agent.errors import ConfigError

    users = (
        "service:\n  console:\n    users:\n"
        f"      - {{name: alice, password_hash: '{PASSWORD_HASH}'}}\n"
    )
    with pytest.raises(ConfigError, match=r"add service\.health"):
        _demo_config(_copy(tmp_path, users), None, tmp_path / "state", 0)

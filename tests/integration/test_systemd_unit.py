"""systemd/edge-agent.service passes ``systemd-analyze security`` and ``verify``, offline.

Neither check needs a running systemd (CI runs in a container), but ``verify`` checks
that ExecStart= and ExecReload= point at executables, and /opt/edge-agent is not
installed on a build machine. So it runs against a throw-away root directory
(``--root``) holding the unit, copies of the distribution's units it refers to
(network-online.target, ...), and executable placeholders at the paths of ExecStart=
and ExecReload=. The unit file itself is checked unchanged.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "edge-agent.service"
REMOTE_CONFIG_DROP_IN = ROOT / "systemd" / "remote-config.conf"
MAX_EXPOSURE = 2.0
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.fail("systemd-analyze not found: install the Debian package 'systemd' (see .ci/run)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def _directives(name: str) -> list[str]:
    return re.findall(rf"^{name}=(.*)$", UNIT.read_text(), re.M)


def test_security_exposure_is_at_most_2_and_plant_network_and_serial_stay_reachable() -> None:
    result = _analyze("security", "--offline=true", "--no-pager", str(UNIT))
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"Overall exposure level for edge-agent\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout
    assert float(match[1]) <= MAX_EXPOSURE, result.stdout

    # The hardening must not cut the agent off from what it is for: systemd-analyze marks
    # these ✗ ("may allocate Internet sockets", "has access to the host's network").
    findings = {
        line.split()[1]: line[0] for line in result.stdout.splitlines() if line[:1] in ("✓", "✗")
    }
    assert findings["RestrictAddressFamilies=~AF_(INET|INET6)"] == "✗"
    assert findings["PrivateNetwork="] == "✗"
    assert findings["IPAddressDeny="] == "✗"
    assert not _directives("IPAddressDeny")
    families = " ".join(_directives("RestrictAddressFamilies")).split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families)  # UNIX: sd_notify
    # Serial ports: the dialout group, the tty device classes, no private /dev.
    assert _directives("SupplementaryGroups") == ["dialout"]
    allowed = _directives("DeviceAllow")
    assert "char-ttyUSB rw" in allowed
    assert "char-ttyS rw" in allowed
    assert _directives("DevicePolicy") == ["closed"]
    assert not _directives("PrivateDevices")


def test_the_unit_declares_the_service_contract() -> None:
    assert _directives("Type") == ["notify"]
    assert _directives("WatchdogSec")
    assert _directives("Restart") == ["on-failure"]
    assert _directives("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert _directives("ExecStart") == [
        "/opt/edge-agent/bin/edge-agent run -c /etc/edge-agent/plant.yaml"
    ]
    assert _directives("StateDirectory") == ["edge-agent"]
    assert _directives("ConfigurationDirectory") == ["edge-agent"]
    assert _directives("DynamicUser") == ["yes"]
    assert _directives("EnvironmentFile") == ["-/etc/edge-agent/edge-agent.env"]
    # Timestamps come from the wall clock: start after the first time sync where one is awaited.
    assert "time-sync.target" in _directives("After")[0].split()
    # Stop: the default drain (5 s) plus each sink's bounded goodbye fit well inside.
    assert int(_directives("TimeoutStopSec")[0].rstrip("s")) >= 20
    # Descriptors: room for a large plant above the usual soft limit of 1024.
    assert int(_directives("LimitNOFILE")[0]) >= 4096


def test_verify_is_clean(tmp_path: Path) -> None:
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units / UNIT.name)
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    (root / "bin").symlink_to("usr/bin")  # merged /usr, as on Debian 12
    # verify only checks that the commands are executables: placeholders will do.
    for command in ("usr/bin/kill", "opt/edge-agent/bin/edge-agent"):
        placeholder = root / command
        placeholder.parent.mkdir(parents=True, exist_ok=True)
        placeholder.write_text("#!/bin/sh\n")
        placeholder.chmod(0o755)

    result = _analyze("verify", f"--root={root}", "--no-pager", UNIT.name)
    assert result.returncode == 0, result.stdout + result.stderr
    # verify reports unknown or malformed settings as warnings with status 0: clean means silent.
    assert result.stdout + result.stderr == ""

    # The drop-in of a remotely configured gateway (docs/REMOTE_CONFIG.md) verifies too,
    # and moves the plant file into the one directory the service may write.
    drop_ins = units / f"{UNIT.name}.d"
    drop_ins.mkdir()
    shutil.copy(REMOTE_CONFIG_DROP_IN, drop_ins / REMOTE_CONFIG_DROP_IN.name)
    with_drop_in = _analyze("verify", f"--root={root}", "--no-pager", UNIT.name)
    assert with_drop_in.returncode == 0, with_drop_in.stdout + with_drop_in.stderr
    assert with_drop_in.stdout + with_drop_in.stderr == ""
    starts = re.findall(r"^ExecStart=(.*)$", REMOTE_CONFIG_DROP_IN.read_text(), re.M)
    assert starts == ["", "/opt/edge-agent/bin/edge-agent run -c %S/edge-agent/plant.yaml"]
    assert _directives("StateDirectory") == ["edge-agent"]  # %S/edge-agent is writable
    (drop_ins / REMOTE_CONFIG_DROP_IN.name).unlink()

    # And it does catch mistakes: the same check on a unit with a typo is not silent.
    (units / UNIT.name).write_text(UNIT.read_text().replace("ProtectHome=yes", "ProtectHom=yes"))
    broken = _analyze("verify", f"--root={root}", "--no-pager", UNIT.name)
    assert "Unknown key 'ProtectHom'" in broken.stdout + broken.stderr

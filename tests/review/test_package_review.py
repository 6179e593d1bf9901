"""Review of the offline package (issue 19, part 4): what a plant engineer meets on the way
from `dpkg -i` to a remotely configured gateway, upgraded, removed and purged.

Each test is a finding and fails on the reviewed code. They share one fresh Debian 12
root (debootstrap, as tests/integration/test_package_install.py does) and two packages:
the checkout's, and the same sources with the version bumped (the next release, built
the way a release is built: one version in pyproject.toml, one command). Every test
purges the package again, whatever it found.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_package_install import (
    MIRROR,
    _chroot,
    _offline,
    _ok,
    _require_root_tools,
    _run,
    version,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
#: The drop-in docs/REMOTE_CONFIG.md and systemd/remote-config.conf tell the operator to
#: install, word for word (inside the gateway, as root).
REMOTE_CONFIG_STEPS = (
    "set -e; install -d /etc/systemd/system/edge-agent.service.d; "
    "install -m 0644 /usr/share/doc/edge-agent/examples/remote-config.conf "
    "/etc/systemd/system/edge-agent.service.d/; "
    "install -m 0644 /etc/edge-agent/plant.yaml /var/lib/edge-agent/plant.yaml"
)


def _bumped(version_text: str) -> str:
    major, minor, patch = version_text.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """amd64 packages: this checkout's ("now") and the next version's ("next")."""
    _require_root_tools()
    out = tmp_path_factory.mktemp("dist")
    _ok(_run(sys.executable, ROOT / "release" / "build_deb.py", "--arch", "amd64", "--out", out))
    # The next release: the same sources, pyproject.toml's version bumped.
    copy = tmp_path_factory.mktemp("next") / "src"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "edge_agent", "drivers", "simulators",
                 "configs", "release", "systemd"):  # fmt: skip
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, copy / name, symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )  # fmt: skip
        else:
            shutil.copy2(source, copy / name)
    pyproject = copy / "pyproject.toml"
    now = version()
    pyproject.write_text(
        pyproject.read_text().replace(f'version = "{now}"', f'version = "{_bumped(now)}"', 1)
    )
    _ok(_run(sys.executable, copy / "release" / "build_deb.py", "--arch", "amd64", "--out", out))
    return {
        "now": out / f"edge-agent_{now}_amd64.deb",
        "next": out / f"edge-agent_{_bumped(now)}_amd64.deb",
    }


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    _require_root_tools()
    root = tmp_path_factory.mktemp("bookworm") / "root"
    _ok(
        _run(
            "debootstrap", "--variant=minbase", "--include=python3,python3-venv",
            "bookworm", root, MIRROR, timeout=900,
        )
    )  # fmt: skip
    proc = root / "proc"
    _ok(_run("mount", "-t", "proc", "proc", proc))
    try:
        yield root
    finally:
        _run("umount", proc)
        if not os.path.ismount(proc):
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def gateway(bookworm: Path, debs: dict[str, Path]) -> Iterator[Path]:
    """The root with both packages copied to /tmp; purged (and cleaned) afterwards."""
    for deb in debs.values():
        shutil.copy2(deb, bookworm / "tmp" / deb.name)
    try:
        yield bookworm
    finally:
        _offline(bookworm, "dpkg", "--purge", "edge-agent")
        shutil.rmtree(bookworm / "etc" / "systemd" / "system" / "edge-agent.service.d", True)
        (bookworm / "etc" / "dpkg" / "dpkg.cfg.d" / "review-nodoc").unlink(missing_ok=True)


def _install(root: Path, deb: Path) -> None:
    _ok(_offline(root, "dpkg", "-i", f"/tmp/{deb.name}"))


def _exec_start(root: Path) -> str:
    """The unit's effective ExecStart=: the packaged unit, then its drop-ins in order (an
    empty ExecStart= resets the list, as systemd reads them)."""
    files = [root / "lib" / "systemd" / "system" / "edge-agent.service"]
    drop_ins = root / "etc" / "systemd" / "system" / "edge-agent.service.d"
    if drop_ins.is_dir():
        files += sorted(drop_ins.glob("*.conf"))
    command = ""
    for path in files:
        for line in path.read_text().splitlines():
            if line.startswith("ExecStart="):
                command = line.removeprefix("ExecStart=")
    return command.replace("%S", "/var/lib")


def test_an_upgrade_to_the_next_version_reports_the_next_version(
    gateway: Path, debs: dict[str, Path]
) -> None:
    """Finding: edge_agent/__init__.py hard-codes __version__ = "0.1.0" while the package,
    the venv's pin (postinst: edge-agent==<version>) and dpkg take pyproject.toml's version.
    A release bumped in pyproject.toml (the only version build_deb.py reads) installs an
    agent that still says 0.1.0 in `--version`, /metrics (edge_agent_info), /status and the
    Sparkplug NBIRTH's "Agent version": a fleet cannot see which gateways were upgraded.
    build_deb.py should refuse the mismatch (or the agent read its distribution's version).
    """
    _install(gateway, debs["now"])
    plant = gateway / "etc" / "edge-agent" / "plant.yaml"
    plant.write_text(plant.read_text().replace("gateway-1", "press-shop-7"))
    _install(gateway, debs["next"])
    # The conffile kept (this part holds).
    assert "press-shop-7" in plant.read_text()
    dpkg = _ok(_chroot(gateway, "dpkg-query", "-W", "-f", "${Version}", "edge-agent"))
    assert dpkg == _bumped(version())
    reported = _ok(_chroot(gateway, "edge-agent", "--version")).strip()
    assert reported == f"edge-agent {dpkg}"


def test_an_aborted_removal_leaves_the_agent_runnable(gateway: Path, debs: dict[str, Path]) -> None:
    """Finding: prerm deletes the venv on `remove` and `deconfigure`, but postinst's
    `abort-remove` and `abort-deconfigure` do nothing. When a removal fails after prerm
    (dpkg then runs `postinst abort-remove`, Debian Policy 6.6) or the install that made
    dpkg deconfigure edge-agent fails (`postinst abort-deconfigure`), dpkg records the
    package as installed and configured, with /usr/bin/edge-agent and the unit's ExecStart
    pointing at a venv that is gone: the next restart of the service fails. Deleting the
    venv in postrm `remove` (no abort path after it), or rebuilding it on abort-*, fixes it.
    The maintainer scripts are called here with exactly dpkg's arguments.
    """
    _install(gateway, debs["now"])
    info = "/var/lib/dpkg/info/edge-agent"
    for prerm, abort in (
        (("remove",), ("abort-remove",)),
        (("deconfigure", "in-favour", "other", "1.0"),
         ("abort-deconfigure", "in-favour", "other", "1.0")),
    ):  # fmt: skip
        _ok(_offline(gateway, f"{info}.prerm", *prerm))
        _ok(_offline(gateway, f"{info}.postinst", *abort))
        status = _ok(_chroot(gateway, "dpkg-query", "-W", "-f", "${Status}", "edge-agent"))
        assert status == "install ok installed"
        ran = _chroot(gateway, "edge-agent", "--version")
        assert ran.returncode == 0, (prerm[0], abort[0], ran.stderr)


def test_the_remote_config_drop_in_is_there_where_docs_exclude_usr_share_doc(
    gateway: Path, debs: dict[str, Path]
) -> None:
    """Finding: the drop-in a remotely configured gateway needs ships only as
    /usr/share/doc/edge-agent/examples/remote-config.conf. Minimal gateway and container
    images tell dpkg not to unpack /usr/share/doc (Debian's official Docker images, Ubuntu
    minimal: `path-exclude=/usr/share/doc/*`), and Debian Policy 12.3 says a package must
    not need anything there to work. There, docs/REMOTE_CONFIG.md's `install` fails and
    the gateway cannot take pushed documents. Ship it beside the unit or under /opt.
    """
    excludes = gateway / "etc" / "dpkg" / "dpkg.cfg.d" / "review-nodoc"
    excludes.write_text("path-exclude=/usr/share/doc/*\n")
    _install(gateway, debs["now"])
    steps = _chroot(gateway, "sh", "-c", REMOTE_CONFIG_STEPS)
    assert steps.returncode == 0, steps.stderr


def test_purge_and_reinstall_leave_a_unit_that_finds_its_plant_file(
    gateway: Path, debs: dict[str, Path]
) -> None:
    """Finding: purge removes /etc/edge-agent, the state (with the remote config's plant
    file, /var/lib/edge-agent/plant.yaml) and the `enable` link, but not the drop-in
    docs/REMOTE_CONFIG.md had the operator install in
    /etc/systemd/system/edge-agent.service.d/. Installed again, the unit still runs
    `edge-agent run -c /var/lib/edge-agent/plant.yaml`, a file purge deleted: the fresh
    /etc/edge-agent/plant.yaml is ignored and the service fails at every start.
    """
    _install(gateway, debs["now"])
    _ok(_chroot(gateway, "sh", "-c", REMOTE_CONFIG_STEPS))
    assert "-c /var/lib/edge-agent/plant.yaml" in _exec_start(gateway)
    _ok(_offline(gateway, "dpkg", "--purge", "edge-agent"))
    _install(gateway, debs["now"])
    command = _exec_start(gateway).split()
    plant = command[command.index("-c") + 1]
    assert (gateway / plant.lstrip("/")).is_file(), (
        f"ExecStart={' '.join(command)}: {plant} does not exist after purge and reinstall"
    )

"""The offline .deb installs on a fresh Debian 12 with the network cut, and runs there.

``python release/build_deb.py --arch all`` builds both packages (this needs the package
index: our wheel's build backend and the wheels of the wheelhouse). A minimal Debian 12
root (``debootstrap --variant=minbase --include=python3,python3-venv``, about 45 s from
the Debian mirror) gets the amd64 package with ``unshare -n chroot ... dpkg -i``: a network
namespace with no interface up, so the install cannot have used a registry. Inside the
root, the installed agent then checks the shipped plant file and reads a simulated meter
(the installed simulator, on the host's loopback: a chroot shares it) once. Reinstall,
remove and purge follow. The arm64 package cannot run here (no binfmt for qemu-user);
its wheels are checked to be aarch64 or pure Python.

Needs root (debootstrap, chroot, mount) and Debian's debootstrap (.ci/run installs it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.servers import free_port, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
MIRROR = os.environ.get("EDGE_AGENT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
OUR_NAMES = {"edge_agent", "drivers", "simulators"}


def _release_module() -> ModuleType:
    """release/ is a folder of scripts, not a package: load deb_wheels.py by its path."""
    if "deb_wheels" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "deb_wheels", ROOT / "release" / "deb_wheels.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["deb_wheels"] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules["deb_wheels"]


def _run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _require_root_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("the package test needs root (debootstrap, chroot, mount); CI runs as root")
    for tool in ("debootstrap", "dpkg-deb", "unshare", "chroot"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: install Debian's package for it (see .ci/run)")


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both packages, built by the one release command."""
    _require_root_tools()
    out = tmp_path_factory.mktemp("dist")
    built = _run(sys.executable, ROOT / "release" / "build_deb.py", "--arch", "all", "--out", out)
    text = _ok(built)
    assert "| distribution | version | amd64 | arm64 |" in text  # the printed table
    return {arch: out / f"edge-agent_{version()}_{arch}.deb" for arch in ("amd64", "arm64")}


def version() -> str:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh minimal Debian 12 root with python3 and python3-venv, /proc mounted."""
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
        # Never delete through a mount point still in place.
        if not os.path.ismount(proc):
            shutil.rmtree(root, ignore_errors=True)


def _chroot(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return _run("chroot", root, *args, timeout=timeout)


def _offline(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """In the root, in a network namespace of its own: no interface, no route, no DNS."""
    return _run("unshare", "--net", "chroot", root, *args)


def test_arm64_and_amd64_packages_carry_only_wheels_for_their_cpu(
    debs: dict[str, Path], tmp_path: Path
) -> None:
    dw = _release_module()
    for arch, machine, other in (("arm64", "aarch64", "x86_64"), ("amd64", "x86_64", "aarch64")):
        tree = tmp_path / arch
        _ok(_run("dpkg-deb", "-x", debs[arch], tree))
        control = _ok(_run("dpkg-deb", "-f", debs[arch], "Architecture", "Depends"))
        assert f"Architecture: {arch}" in control
        assert "python3 (>= 3.11), python3 (<< 3.12), python3-venv" in control
        wheels = sorted((tree / "opt" / "edge-agent" / "wheels").glob("*"))
        names = {dw.Wheel.of(w).name for w in wheels}
        assert {"edge-agent", "pymodbus", "numpy", "cryptography", "pydantic-core"} <= names
        compiled = 0
        for path in wheels:
            wheel = dw.Wheel.of(path)
            runs = dw.check_runs_on(wheel, arch, (3, 11))
            assert other not in path.name, path.name
            if not wheel.pure:
                compiled += 1
                assert runs.startswith(machine), (path.name, runs)
            if wheel.name != "edge-agent":
                assert not dw.top_level_names(path) & OUR_NAMES, path.name
        assert compiled >= 5  # numpy, cryptography, pydantic-core, aiohttp, pyyaml, ...
        # Nothing enabled: no [Install] link in the package, only the unit.
        assert (tree / "lib" / "systemd" / "system" / "edge-agent.service").is_file()
        assert not list(tree.glob("etc/systemd/**/*"))
        assert (tree / "etc" / "edge-agent" / "edge-agent.env").stat().st_mode & 0o777 == 0o600
        conffiles = _ok(_run("dpkg-deb", "-I", debs[arch], "conffiles")).split()
        assert conffiles == ["/etc/edge-agent/plant.yaml", "/etc/edge-agent/edge-agent.env"]


def test_the_package_installs_offline_on_fresh_debian_12_and_reads_a_device(
    debs: dict[str, Path], bookworm: Path
) -> None:
    root = bookworm
    deb = root / "tmp" / debs["amd64"].name
    shutil.copy2(debs["amd64"], deb)
    inside = f"/tmp/{deb.name}"

    # The network namespace really is cut off: not even loopback is up.
    probe = _offline(
        root, "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 9), 1)"
    )
    assert probe.returncode != 0
    assert "Network is unreachable" in probe.stderr or "Errno 101" in probe.stderr, probe.stderr

    _ok(_offline(root, "dpkg", "-i", inside))
    opt = root / "opt" / "edge-agent"
    (venv,) = opt.glob("venv-*")
    assert os.readlink(opt / "venv") == venv.name
    assert os.readlink(root / "var" / "lib" / "edge-agent") == "private/edge-agent"
    assert (root / "var" / "lib" / "private" / "edge-agent").stat().st_mode & 0o777 == 0o700
    assert (root / "etc" / "edge-agent" / "edge-agent.env").stat().st_mode & 0o777 == 0o600
    assert not list((root / "etc" / "systemd").glob("system/*.wants/edge-agent.service"))

    # Our packages come from the venv, not from the system's site-packages.
    assert "check" in _ok(_chroot(root, "/opt/edge-agent/bin/edge-agent", "--help"))
    located = _ok(
        _chroot(
            root, "/opt/edge-agent/venv/bin/python", "-c",
            "import edge_agent, drivers, simulators; "
            "print(edge_agent.__file__, drivers.__file__, simulators.__file__)",
        )
    )  # fmt: skip
    for path in located.split():
        assert path.startswith("/opt/edge-agent/venv/lib/python3.11/site-packages/"), path
    system = _chroot(root, "python3", "-c", "import drivers")
    assert system.returncode != 0  # nothing went into the system's Python

    # The shipped plant file, with the shipped env file's variables, as README says.
    env_then_check = (
        "set -a; . /etc/edge-agent/edge-agent.env; edge-agent check -c /etc/edge-agent/plant.yaml"
    )
    check = _ok(_chroot(root, "sh", "-c", env_then_check))
    assert "/etc/edge-agent/plant.yaml: valid" in check
    assert "state directory /var/lib/edge-agent" in check

    # The installed simulator serves a meter on the (shared) loopback; the installed agent
    # reads it once.
    port = free_port()
    plant = root / "tmp" / "loopback.yaml"
    plant.write_text(
        "plant: {name: package-test, timezone: UTC}\n"
        "state_dir: /tmp/state\n"
        "devices:\n"
        "  - name: meter\n"
        "    template: eastron-sdm630\n"
        f"    connection: {{transport: tcp, host: 127.0.0.1, port: {port}}}\n"
        "    unit_id: 1\n"
    )
    simulator = subprocess.Popen(
        ["chroot", str(root), "edge-agent", "simulate", "-c", f"template:eastron-sdm630:{port}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, timeout=60)
        once = _chroot(root, "edge-agent", "run", "--once", "--json", "-c", "/tmp/loopback.yaml")
    finally:
        simulator.terminate()
        try:
            simulator.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            simulator.kill()
            simulator.communicate()
    reading = json.loads(_ok(once))
    assert reading["good"] is True, once.stdout
    ((device,),) = [reading["devices"]]
    assert device["device"] == "meter"
    tags = [tag for group in device["groups"] for tag in group["tags"]]
    assert len(tags) == 28
    assert {tag["quality"] for tag in tags} == {"good"}
    volts = next(tag["value"] for tag in tags if tag["name"] == "voltage_l1")
    assert 200 < volts < 260  # a plausible mains voltage, decoded

    # Reinstalling (as an upgrade does) swaps in a new venv and removes the old one.
    _ok(_offline(root, "dpkg", "-i", inside))
    (second,) = opt.glob("venv-*")
    assert second != venv
    assert os.readlink(opt / "venv") == second.name

    # Remove: the venv goes, config and state stay. Purge: they go too.
    (root / "var" / "lib" / "private" / "edge-agent" / "outbox.sqlite3").write_bytes(b"")
    _ok(_offline(root, "dpkg", "-r", "edge-agent"))
    assert not opt.exists() or not list(opt.glob("venv*"))
    assert (root / "etc" / "edge-agent" / "plant.yaml").is_file()
    assert (root / "var" / "lib" / "edge-agent" / "outbox.sqlite3").exists()
    _ok(_offline(root, "dpkg", "--purge", "edge-agent"))
    assert not (root / "etc" / "edge-agent").exists()
    assert not (root / "var" / "lib" / "edge-agent").exists()
    assert not (root / "var" / "lib" / "private" / "edge-agent").exists()
    assert not (root / "usr" / "bin" / "edge-agent").exists()

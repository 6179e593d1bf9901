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

The same root then takes what a plant engineer meets later (the findings of the package's
review): an upgrade to the next version (the same sources with the one version bumped,
built the way a release is built), an aborted removal, an image that does not unpack
/usr/share/doc, and a purge after the remote-config drop-in was installed. Each of those
tests purges the package again, whatever it found.

Needs root (debootstrap, chroot, mount) and Debian's debootstrap (.ci/run installs it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
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
#: The remote-config drop-in's steps as docs/REMOTE_CONFIG.md and systemd/remote-config.conf
#: give them to the operator (inside the gateway, as root); checked against both below.
DROP_IN_SOURCE = "/usr/share/edge-agent/remote-config.conf"
REMOTE_CONFIG_STEPS = (
    "set -e; install -d /etc/systemd/system/edge-agent.service.d; "
    f"install -m 0644 {DROP_IN_SOURCE} "
    "/etc/systemd/system/edge-agent.service.d/; "
    "install -m 0644 /etc/edge-agent/plant.yaml /var/lib/edge-agent/plant.yaml"
)


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


def version(root: Path = ROOT) -> str:
    """The project's one version, where pyproject.toml and build_deb.py read it."""
    found = re.search(
        r'^__version__ = "([^"]+)"$', (root / "edge_agent" / "__init__.py").read_text(), re.M
    )
    assert found is not None
    return found[1]


def _bumped(version_text: str) -> str:
    major, minor, patch = version_text.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


def _next_release(into: Path) -> Path:
    """The same sources with the one version bumped, as the next release would be."""
    for name in ("pyproject.toml", "README.md", "edge_agent", "drivers", "simulators",
                 "configs", "release", "systemd"):  # fmt: skip
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, into / name, symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )  # fmt: skip
        else:
            shutil.copy2(source, into / name)
    init = into / "edge_agent" / "__init__.py"
    now = version()
    init.write_text(init.read_text().replace(f'"{now}"', f'"{_bumped(now)}"', 1))
    assert version(into) == _bumped(now)
    return into


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both packages of this checkout, built by the one release command, and the next
    version's amd64 package ("next"); the two builds run side by side."""
    _require_root_tools()
    out = tmp_path_factory.mktemp("dist")
    next_out = tmp_path_factory.mktemp("dist-next")
    source = tmp_path_factory.mktemp("next")
    builds = [
        (build_deb, "--arch", arch, "--out", dist)
        for build_deb, arch, dist in (
            (ROOT / "release" / "build_deb.py", "all", out),
            (_next_release(source) / "release" / "build_deb.py", "amd64", next_out),
        )
    ]
    running = [
        subprocess.Popen(
            [sys.executable, *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in builds
    ]
    texts = []
    for process in running:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{process.args}:\n{stdout}\n{stderr}"
        texts.append(stdout)
    assert "| distribution | version | amd64 | arm64 |" in texts[0]  # the printed table
    now = version()
    return {
        **{arch: out / f"edge-agent_{now}_{arch}.deb" for arch in ("amd64", "arm64")},
        "next": next_out / f"edge-agent_{_bumped(now)}_amd64.deb",
    }


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
        # The remote-config drop-in, outside /usr/share/doc, with the marker purge looks for.
        drop_in = (tree / DROP_IN_SOURCE.lstrip("/")).read_text()
        assert drop_in == (ROOT / "systemd" / "remote-config.conf").read_text()
        assert drop_in.startswith("# Shipped by the edge-agent package")
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

    # Remove: the venv goes, config and state stay; the link `systemctl enable` made goes
    # with the unit it pointed at. Purge: config and state go too.
    (root / "var" / "lib" / "private" / "edge-agent" / "outbox.sqlite3").write_bytes(b"")
    wants = root / "etc" / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "edge-agent.service").symlink_to("/lib/systemd/system/edge-agent.service")
    _ok(_offline(root, "dpkg", "-r", "edge-agent"))
    assert not opt.exists()
    assert not (wants / "edge-agent.service").is_symlink()
    assert (root / "etc" / "edge-agent" / "plant.yaml").is_file()
    assert (root / "var" / "lib" / "edge-agent" / "outbox.sqlite3").exists()
    _ok(_offline(root, "dpkg", "--purge", "edge-agent"))
    assert not (root / "etc" / "edge-agent").exists()
    assert not (root / "var" / "lib" / "edge-agent").exists()
    assert not (root / "var" / "lib" / "private" / "edge-agent").exists()
    assert not (root / "usr" / "bin" / "edge-agent").exists()


@pytest.fixture
def gateway(bookworm: Path, debs: dict[str, Path]) -> Iterator[Path]:
    """The root with this checkout's and the next version's amd64 packages in /tmp;
    purged (and cleaned) afterwards."""
    for deb in (debs["amd64"], debs["next"]):
        shutil.copy2(deb, bookworm / "tmp" / deb.name)
    try:
        yield bookworm
    finally:
        _offline(bookworm, "dpkg", "--purge", "edge-agent")
        shutil.rmtree(bookworm / "etc" / "edge-agent", True)  # a test's own, if not installed
        shutil.rmtree(bookworm / "etc" / "systemd" / "system" / "edge-agent.service.d", True)
        (bookworm / "etc" / "dpkg" / "dpkg.cfg.d" / "edge-agent-test-nodoc").unlink(missing_ok=True)


def _install(root: Path, deb: Path, *options: str) -> subprocess.CompletedProcess[str]:
    installed = _offline(root, "dpkg", "-i", *options, f"/tmp/{deb.name}")
    _ok(installed)
    return installed


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
    """Review finding: edge_agent/__init__.py hard-coded __version__ while the package,
    the venv's pin (postinst: edge-agent==<version>) and dpkg took pyproject.toml's: an
    upgraded agent reported the old version in `--version`, /metrics (edge_agent_info),
    /status and the Sparkplug NBIRTH. Now one version (edge_agent/__init__.py) for all.

    On the way, README's commands: the last step from a hand install (a plant file already
    in /etc/edge-agent, `dpkg -i --force-confold`: kept, the package's beside it as
    .dpkg-dist, no question) and a fleet's unattended upgrade (`--force-confold` again).
    """
    etc = gateway / "etc" / "edge-agent"
    etc.mkdir()
    plant = etc / "plant.yaml"
    hand = (ROOT / "release" / "plant.yaml").read_text().replace("gateway-1", "press-shop-7")
    plant.write_text(hand)
    _install(gateway, debs["amd64"], "--force-confold")
    assert plant.read_text() == hand
    assert "gateway-1" in (etc / "plant.yaml.dpkg-dist").read_text()
    env_then_check = (
        "set -a; . /etc/edge-agent/edge-agent.env; edge-agent check -c /etc/edge-agent/plant.yaml"
    )
    assert "/etc/edge-agent/plant.yaml: valid" in _ok(_chroot(gateway, "sh", "-c", env_then_check))

    _install(gateway, debs["next"], "--force-confold")
    # The conffile kept.
    assert "press-shop-7" in plant.read_text()
    dpkg = _ok(_chroot(gateway, "dpkg-query", "-W", "-f", "${Version}", "edge-agent"))
    assert dpkg == _bumped(version())
    reported = _ok(_chroot(gateway, "edge-agent", "--version")).strip()
    assert reported == f"edge-agent {dpkg}"


def test_an_aborted_removal_leaves_the_agent_runnable(gateway: Path, debs: dict[str, Path]) -> None:
    """Review finding: prerm deleted the venv on `remove` and `deconfigure`, but postinst's
    `abort-remove` and `abort-deconfigure` did nothing. When a removal fails after prerm
    (dpkg then runs `postinst abort-remove`, Debian Policy 6.6) or the install that made
    dpkg deconfigure edge-agent fails (`postinst abort-deconfigure`), dpkg records the
    package as installed, and /usr/bin/edge-agent and the unit's ExecStart must still run.
    The maintainer scripts are called here with exactly dpkg's arguments.
    """
    _install(gateway, debs["amd64"])
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


def test_the_remote_config_drop_in_without_usr_share_doc_and_after_purge(
    gateway: Path, debs: dict[str, Path]
) -> None:
    """Two review findings on the drop-in of a remotely configured gateway (one install
    serves both, to keep CI short):

    1. It shipped only under /usr/share/doc/edge-agent/examples/. Minimal gateway and
       container images tell dpkg not to unpack /usr/share/doc (`path-exclude=
       /usr/share/doc/*`), and Debian Policy 12.3 says a package must not need anything
       there to work: docs/REMOTE_CONFIG.md's `install` failed.
    2. Purge removed /etc/edge-agent, the state (with the remote config's plant file,
       /var/lib/edge-agent/plant.yaml) and the `enable` link, but not the drop-in in
       /etc/systemd/system/edge-agent.service.d/. Installed again, the unit still ran
       `edge-agent run -c /var/lib/edge-agent/plant.yaml`, a file purge deleted.

    A drop-in the operator wrote (no marker line) is not the package's: purge keeps it.
    """
    for where in (ROOT / "docs" / "REMOTE_CONFIG.md", ROOT / "systemd" / "remote-config.conf"):
        assert f"install -m 0644 {DROP_IN_SOURCE}" in where.read_text(), where
    excludes = gateway / "etc" / "dpkg" / "dpkg.cfg.d" / "edge-agent-test-nodoc"
    excludes.write_text("path-exclude=/usr/share/doc/*\n")
    _install(gateway, debs["amd64"])
    assert not (gateway / "usr" / "share" / "doc" / "edge-agent").exists()  # excluded indeed
    steps = _chroot(gateway, "sh", "-c", REMOTE_CONFIG_STEPS)
    assert steps.returncode == 0, steps.stderr

    assert "-c /var/lib/edge-agent/plant.yaml" in _exec_start(gateway)
    _ok(_offline(gateway, "dpkg", "--purge", "edge-agent"))
    drop_ins = gateway / "etc" / "systemd" / "system" / "edge-agent.service.d"
    assert not drop_ins.exists()
    _install(gateway, debs["amd64"])
    command = _exec_start(gateway).split()
    plant = command[command.index("-c") + 1]
    assert (gateway / plant.lstrip("/")).is_file(), (
        f"ExecStart={' '.join(command)}: {plant} does not exist after purge and reinstall"
    )

    drop_ins.mkdir(parents=True)
    own = drop_ins / "remote-config.conf"
    own.write_text("[Service]\nExecStart=\nExecStart=/opt/site/bin/agent-wrapper\n")
    purged = _offline(gateway, "dpkg", "--purge", "edge-agent")
    _ok(purged)
    assert own.is_file()
    assert "not the package's drop-in: left in place" in purged.stderr

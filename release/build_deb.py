"""Build the offline Debian package of edge-agent: ``edge-agent_<version>_<arch>.deb``.

    python release/build_deb.py --arch amd64|arm64|all [--out dist/] [--python 3.11]

One command, run from a checkout on a machine with pip and dpkg-deb (any architecture):

1. our wheel, built from a copy of the sources (a build in the checkout would leave
   build/ and *.egg-info behind);
2. a wheelhouse of every runtime dependency for the target: ``pip download
   --only-binary=:all: --platform manylinux..._<machine> --python-version 3.11``, pinned
   to the versions installed here (those the tests ran against) where they apply;
3. the checks of ``deb_wheels.py``: every wheel runs on the target or is pure Python, and
   none installs a top-level name of ours; the list is printed as a Markdown table
   (docs/INSTALL.md keeps a copy);
4. ``dpkg-deb --build --root-owner-group``: the wheelhouse in /opt/edge-agent/wheels,
   the unit, /etc/edge-agent (example plant, secrets file; both conffiles), and the
   maintainer scripts of ``release/debian/`` that build the venv on the gateway, offline.

Debian 12's python3 is 3.11, the default target. ``--python 3.12`` builds for Ubuntu 24.04
(its cp312 wheels in a package named ``..._<version>+py312_<arch>.deb``).

This folder is not a Python package and is never installed: a script run by path cannot
shadow an installed package (the name ``packaging`` would have: pip and setuptools import it).
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

import deb_wheels  # beside this file; sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
#: What the wheel is built from (pyproject.toml's packages, their data, the README).
SOURCES = ("pyproject.toml", "README.md", "edge_agent", "drivers", "simulators", "configs")
OPT = "opt/edge-agent"
DESCRIPTION = """\
Industrial edge data-collection agent (Modbus/OPC UA in, MQTT/InfluxDB out)
 edge-agent reads power meters, CNCs, presses and compressors over Modbus TCP/RTU
 and OPC UA, computes energy and OEE metrics at the edge and publishes to MQTT
 (JSON, Sparkplug B) and InfluxDB behind a durable outbox.
 .
 Offline package: every Python dependency is inside as a wheel; the agent is
 installed into its own virtual environment in /opt/edge-agent without network.
 The systemd unit is installed but not enabled: fill in /etc/edge-agent/plant.yaml
 and /etc/edge-agent/edge-agent.env, then `systemctl enable --now edge-agent`."""
COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: edge-agent
Comment: The wheels in /opt/edge-agent/wheels carry their own licences (in each
 wheel's .dist-info); the web console's vendored uPlot carries its MIT licence.

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
"""


def run(*args: str | Path, cwd: Path | None = None) -> None:
    """Run a build step; its output goes to the terminal, a failure stops the build."""
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=cwd, check=True, stdin=subprocess.DEVNULL)


#: Where the drop-in of a remotely configured gateway is installed. Not under
#: /usr/share/doc: minimal images exclude that from unpacking (dpkg's path-exclude).
DROP_IN = "usr/share/edge-agent/remote-config.conf"


def project_version() -> str:
    """The project's one version: ``__version__`` in edge_agent/__init__.py.

    pyproject.toml takes it from there too (``dynamic = ["version"]``), so the wheel, the
    package and what the agent reports agree. Read from the source text, not imported:
    this script runs before anything of the project is installed.
    """
    tree = ast.parse((ROOT / "edge_agent" / "__init__.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise SystemExit('edge_agent/__init__.py: no `__version__ = "..."` (the one version)')


def build_wheel(into: Path, scratch: Path) -> Path:
    source = scratch / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    # --isolated: no pip configuration or PIP_* variable of this machine takes part.
    run(
        sys.executable, "-m", "pip", "--isolated", "wheel", "--quiet", "--no-deps",
        "-w", into, ".", cwd=source,
    )  # fmt: skip
    (wheel,) = into.glob("edge_agent-*.whl")
    built = deb_wheels.Wheel.of(wheel).version
    if built != project_version():
        raise SystemExit(
            f"{wheel.name}: version {built}, but edge_agent/__init__.py says "
            f"{project_version()}: pyproject.toml must take it from there (dynamic)"
        )
    return wheel


def installed_pins(scratch: Path) -> Path:
    """Constraints: every distribution installed here at its installed version.

    pip applies the ones that are dependencies of the target; the package then carries
    the versions the test suite ran against, not whatever is newest on the build day.
    Only what this Python has installed can be pinned: on a clean build machine the
    rest is the newest that pyproject.toml allows, and this says which.
    """
    installed = {
        _normal(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if d.metadata["Name"] and _normal(d.metadata["Name"]) != "edge-agent"
    }
    pins = sorted(f"{name}=={version}" for name, version in installed.items())
    path = scratch / "constraints.txt"
    path.write_text("\n".join(pins) + "\n")
    free = [name for name in _direct_dependencies() if name not in installed]
    if free:
        print(
            f"note: not installed here, so not pinned (newest allowed): {', '.join(free)};"
            " build from the environment the tests ran in to carry their versions",
            flush=True,
        )
    return path


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _direct_dependencies() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        requirements = tomllib.load(file)["project"]["dependencies"]
    return [_normal(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0]) for r in requirements]


def download(wheel: Path, arch: str, python: str, into: Path, pins: Path | None) -> None:
    into.mkdir()
    shutil.copy2(wheel, into / wheel.name)
    platforms = [arg for p in deb_wheels.platforms(arch) for arg in ("--platform", p)]
    constraints = ["-c", str(pins)] if pins else []
    run(
        # --isolated: the machine's pip configuration (an index, find-links, a global
        # constraint file, PIP_* variables) must not change what the package carries.
        sys.executable, "-m", "pip", "--isolated", "download", "--quiet", "--only-binary=:all:",
        *platforms, "--python-version", python, "--implementation", "cp",
        "--abi", "cp" + python.replace(".", ""), "--abi", "abi3", "--abi", "none",
        *constraints, "-d", into, into / wheel.name,
    )  # fmt: skip


#: The line by which postrm purge knows the copy of the drop-in in /etc as ours.
DROP_IN_MARKER = "# Shipped by the edge-agent package"


def drop_in_text() -> str:
    text = (ROOT / "systemd" / "remote-config.conf").read_text()
    if not text.startswith(DROP_IN_MARKER):
        raise SystemExit(f"systemd/remote-config.conf: first line must start {DROP_IN_MARKER!r}")
    return text


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _unpacked(wheel: Path) -> int:
    with zipfile.ZipFile(wheel) as archive:
        return sum(info.file_size for info in archive.infolist())


def stage(tree: Path, wheels: Path, arch: str, python: str, version: str, deb_version: str) -> None:
    """The package's files and DEBIAN/ control files under ``tree``."""
    shutil.copytree(wheels, tree / OPT / "wheels")
    _write(tree / OPT / "README.md", (ROOT / "README.md").read_text())  # the unit's Documentation=
    _write(tree / OPT / "schema.json", (ROOT / "configs" / "schema.json").read_text())
    (tree / OPT / "bin").mkdir()
    (tree / OPT / "bin" / "edge-agent").symlink_to(
        "../venv/bin/edge-agent"
    )  # the unit's ExecStart=
    (tree / "usr" / "bin").mkdir(parents=True)
    (tree / "usr" / "bin" / "edge-agent").symlink_to(f"/{OPT}/bin/edge-agent")
    unit = (ROOT / "systemd" / "edge-agent.service").read_text()
    _write(tree / "lib" / "systemd" / "system" / "edge-agent.service", unit)
    _write(tree / "etc" / "edge-agent" / "plant.yaml", (HERE / "plant.yaml").read_text())
    env = (ROOT / "systemd" / "edge-agent.env.example").read_text()
    _write(tree / "etc" / "edge-agent" / "edge-agent.env", env, 0o600)  # secrets: root only
    _write(tree / "usr" / "share" / "doc" / "edge-agent" / "copyright", COPYRIGHT)
    # The drop-in of a remotely configured gateway (docs/REMOTE_CONFIG.md): copied into
    # /etc/systemd/system/edge-agent.service.d/ by hand; purge removes that copy.
    _write(tree / DROP_IN, drop_in_text())

    # The files, and the venv postinst unpacks the wheels into (about their contents).
    files = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    venv = sum(_unpacked(wheel) for wheel in wheels.glob("*.whl"))
    size_kib = (files + venv) // 1024
    minor = int(python.split(".")[1])
    control = {
        "Package": "edge-agent",
        "Version": deb_version,
        "Architecture": arch,
        "Maintainer": os.environ.get("DEBEMAIL", "edge-agent developers <edge-agent@localhost>"),
        "Installed-Size": str(size_kib),
        # cp3XY wheels: exactly this Python. python3-venv: ensurepip, for the venv's pip.
        "Depends": f"python3 (>= 3.{minor}), python3 (<< 3.{minor + 1}), python3-venv",
        "Recommends": "systemd-timesyncd | chrony | time-daemon",
        "Section": "net",
        "Priority": "optional",
        "Description": DESCRIPTION,
    }
    _write(tree / "DEBIAN" / "control", "".join(f"{k}: {v}\n" for k, v in control.items()))
    _write(
        tree / "DEBIAN" / "conffiles",
        "/etc/edge-agent/plant.yaml\n/etc/edge-agent/edge-agent.env\n",
    )
    for script in ("postinst", "prerm", "postrm"):
        text = (HERE / "debian" / script).read_text().replace("@PYVERSION@", version)
        text = text.replace("@DROP_IN_MARKER@", DROP_IN_MARKER)
        _write(tree / "DEBIAN" / script, text, 0o755)
    for path in tree.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def build(
    arch: str, python: str, out: Path, wheel: Path, pins: Path | None, scratch: Path
) -> tuple[Path, list[deb_wheels.Checked]]:
    """One architecture's package, and its checked wheelhouse."""
    version = project_version()
    deb_version = version if python == "3.11" else f"{version}+py{python.replace('.', '')}"
    wheels = scratch / f"wheels-{arch}"
    download(wheel, arch, python, wheels, pins)
    major, minor = (int(n) for n in python.split("."))
    checked = deb_wheels.check_wheelhouse(wheels, wheels / wheel.name, arch, (major, minor))
    print(f"\n{arch}: {len(checked)} wheels, every one for {arch} or pure Python, no clash with")
    print(f"edge-agent's top-level names ({', '.join(sorted(deb_wheels.top_level_names(wheel)))})")
    tree = scratch / f"tree-{arch}"
    stage(tree, wheels, arch, python, version, deb_version)
    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"edge-agent_{deb_version}_{arch}.deb"
    run("dpkg-deb", "--root-owner-group", "-Zxz", "--build", tree, deb)
    return deb, checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=["amd64", "arm64", "all"], default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument(
        "--python",
        default="3.11",
        choices=["3.11", "3.12", "3.13"],
        help="the target's python3 (Debian 12: 3.11, Ubuntu 24.04: 3.12)",
    )
    parser.add_argument(
        "--latest",
        action="store_true",
        help="newest dependency versions, not the ones installed here",
    )
    args = parser.parse_args(argv)
    if shutil.which("dpkg-deb") is None:
        parser.error("dpkg-deb not found: apt-get install dpkg-dev (or dpkg)")
    arches = list(deb_wheels.MACHINES) if args.arch == "all" else [args.arch]
    with tempfile.TemporaryDirectory(prefix="edge-agent-deb-") as tmp:
        scratch = Path(tmp)
        wheel = build_wheel(scratch / "dist", scratch)
        pins = None if args.latest else installed_pins(scratch)
        debs, by_arch = [], {}
        for arch in arches:
            try:
                deb, by_arch[arch] = build(
                    arch, args.python, args.out.resolve(), wheel, pins, scratch
                )
            except deb_wheels.WheelhouseError as exc:
                print(f"error: {arch}: {exc}", file=sys.stderr)
                return 1
            debs.append(deb)
    print(f"\nPython {args.python} wheels in the package:\n")
    print(deb_wheels.table(by_arch))
    print()
    for deb in debs:
        print(f"built {deb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

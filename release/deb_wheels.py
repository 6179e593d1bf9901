"""The wheelhouse of the offline package: what goes in it, and the checks it must pass.

A gateway installs from these wheels alone (``pip install --no-index``), so every
runtime dependency must be there as a wheel that runs on the target: built for its CPU
(x86_64 or aarch64, glibc, not musl) and a glibc no newer than the target's, or pure
Python. ``pip download --only-binary=:all: --platform ...`` picks such wheels; the checks
here read them back and refuse the wheelhouse when one is not, so a wrong pick fails the
build instead of the install on a gateway with no internet.

The package's own top-level names (``edge_agent``, ``drivers``, ``simulators``) are
generic: the check also refuses a wheelhouse in which another wheel installs a package or
module of the same name, which would overwrite ours (or be overwritten) in the venv.

Stdlib only: ``python release/build_deb.py`` runs before anything else is installed.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Debian architecture -> the machine name in wheel platform tags.
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
#: The newest glibc a wheel may ask for: Debian 12's (Ubuntu 24.04 has 2.39).
MAX_GLIBC = (2, 36)
#: Legacy manylinux tags and the glibc they stand for (PEP 600).
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_WHEEL_NAME = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)


class WheelhouseError(Exception):
    """The wheelhouse would not install or run on the target; the message says which wheel."""


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str
    version: str
    python_tags: tuple[str, ...]
    abi_tags: tuple[str, ...]
    platform_tags: tuple[str, ...]

    @property
    def pure(self) -> bool:
        return self.platform_tags == ("any",)

    @classmethod
    def of(cls, path: Path) -> Wheel:
        match = _WHEEL_NAME.match(path.name)
        if match is None:
            raise WheelhouseError(f"{path.name}: not a wheel file name (name-version-py-abi-plat)")
        return cls(
            path,
            match["name"].replace("_", "-").lower(),
            match["version"],
            tuple(match["py"].split(".")),
            tuple(match["abi"].split(".")),
            tuple(match["plat"].split(".")),
        )


def platforms(arch: str) -> list[str]:
    """``pip download --platform`` values for ``arch``: every manylinux tag up to MAX_GLIBC."""
    machine = MACHINES[arch]
    minors = range(17, MAX_GLIBC[1] + 1)
    return [f"manylinux2014_{machine}", *(f"manylinux_2_{m}_{machine}" for m in minors)]


def _glibc(tag: str, machine: str) -> tuple[int, int] | None:
    """The glibc a platform tag needs on ``machine``; None when it is not for that machine."""
    if not tag.endswith("_" + machine):
        return None
    stem = tag[: -len(machine) - 1]
    if stem in _LEGACY:
        return _LEGACY[stem]
    versioned = re.fullmatch(r"manylinux_(\d+)_(\d+)", stem)
    return (int(versioned[1]), int(versioned[2])) if versioned else None


def _python_ok(wheel: Wheel, python: tuple[int, int]) -> bool:
    """A wheel CPython ``python`` can load: py3, the exact cpXY, or the stable ABI of an
    older or equal version."""
    cp = f"cp{python[0]}{python[1]}"
    for tag in wheel.python_tags:
        if tag in ("py3", f"py{python[0]}{python[1]}") or (
            tag == cp and "abi3" not in wheel.abi_tags
        ):
            return True
        older = re.fullmatch(r"cp3(\d+)", tag)
        if older and "abi3" in wheel.abi_tags and int(older[1]) <= python[1]:
            return True
    return False


def check_runs_on(wheel: Wheel, arch: str, python: tuple[int, int]) -> str:
    """Why ``wheel`` installs on ``arch`` with ``python``: "pure Python" or its best tag.

    Raises WheelhouseError when it does not.
    """
    if not _python_ok(wheel, python):
        raise WheelhouseError(
            f"{wheel.path.name}: not for CPython {python[0]}.{python[1]} "
            f"(python tags {'.'.join(wheel.python_tags)}, abi {'.'.join(wheel.abi_tags)})"
        )
    if wheel.pure:
        return "pure Python"
    machine = MACHINES[arch]
    needs = [g for g in (_glibc(t, machine) for t in wheel.platform_tags) if g is not None]
    if not needs:
        raise WheelhouseError(
            f"{wheel.path.name}: built for {'.'.join(wheel.platform_tags)}, not for "
            f"{arch} ({machine}, glibc); no pure-Python wheel was found"
        )
    oldest = min(needs)
    if oldest > MAX_GLIBC:
        raise WheelhouseError(
            f"{wheel.path.name}: needs glibc {oldest[0]}.{oldest[1]}, newer than "
            f"{MAX_GLIBC[0]}.{MAX_GLIBC[1]} (Debian 12)"
        )
    return f"{machine}, glibc {oldest[0]}.{oldest[1]}+"


def top_level_names(path: Path) -> set[str]:
    """The packages and modules a wheel puts into site-packages.

    From its RECORD (every file it installs, including those under ``.data/purelib`` and
    ``.data/platlib``), joined with ``top_level.txt`` when setuptools wrote one; a
    compiled module ``_foo.cpython-311-x86_64-linux-gnu.so`` is ``_foo``.
    """
    names: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        members = archive.namelist()
        records = [m for m in members if m.endswith(".dist-info/RECORD") and m.count("/") == 1]
        tops = [m for m in members if m.endswith(".dist-info/top_level.txt") and m.count("/") == 1]
        if not records:
            raise WheelhouseError(f"{path.name}: no .dist-info/RECORD")
        installed = [line.split(",", 1)[0] for line in _lines(archive.read(records[0]))]
        for top in tops:
            names.update(line.strip() for line in _lines(archive.read(top)) if line.strip())
    for entry in installed:
        parts = PurePosixPath(entry).parts
        if parts and parts[0].endswith(".data") and len(parts) > 2:
            if parts[1] not in ("purelib", "platlib"):
                continue  # scripts, headers, data: not importable
            parts = parts[2:]
        if not parts or parts[0].endswith(".dist-info") or parts[0] == "..":
            continue
        first = parts[0]
        if len(parts) == 1:
            if not first.endswith((".py", ".so", ".pyd")):
                continue  # a .pth file or the like
            first = first.split(".", 1)[0]
        names.add(first)
    return names


def _lines(data: bytes) -> Iterable[str]:
    return data.decode("utf-8").splitlines()


def check_no_shadowing(ours: Path, others: Iterable[Path]) -> set[str]:
    """Our wheel's top-level names; raises when another wheel installs one of them."""
    reserved = top_level_names(ours)
    clashes = []
    for other in others:
        shared = reserved & top_level_names(other)
        if shared:
            clashes.append(f"{other.name} installs {', '.join(sorted(shared))}")
    if clashes:
        raise WheelhouseError(
            "another wheel installs a top-level name of edge-agent's wheel ("
            + ", ".join(sorted(reserved))
            + "): "
            + "; ".join(clashes)
        )
    return reserved


@dataclass(frozen=True)
class Checked:
    wheel: Wheel
    runs: str


def check_wheelhouse(
    directory: Path, ours: Path, arch: str, python: tuple[int, int]
) -> list[Checked]:
    """Every file of ``directory`` is a wheel for ``arch``/``python`` and none shadows ours."""
    files = sorted(p for p in directory.iterdir() if p.is_file())
    strays = [p.name for p in files if p.suffix != ".whl"]
    if strays:
        raise WheelhouseError(f"not wheels (an sdist would need a compiler): {', '.join(strays)}")
    checked = [Checked(w, check_runs_on(w, arch, python)) for w in map(Wheel.of, files)]
    check_no_shadowing(ours, (c.wheel.path for c in checked if c.wheel.path.name != ours.name))
    return checked


def table(by_arch: dict[str, list[Checked]]) -> str:
    """A Markdown table: each distribution, its version, and what it is per architecture."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for arch, checked in by_arch.items():
        for item in checked:
            rows.setdefault((item.wheel.name, item.wheel.version), {})[arch] = item.runs
    arches = list(by_arch)
    lines = [
        "| distribution | version | " + " | ".join(arches) + " |",
        "|---|---|" + "---|" * len(arches),
    ]
    for (name, version), runs in sorted(rows.items()):
        cells = " | ".join(runs.get(arch, "missing") for arch in arches)
        lines.append(f"| {name} | {version} | {cells} |")
    return "\n".join(lines)

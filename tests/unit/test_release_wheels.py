"""The offline package's wheelhouse checks (release/deb_wheels.py), on wheels made here.

A wheel that would not load on the gateway's CPU, glibc or Python, or that installs a
top-level name of ours (``drivers``, ``simulators``, ``edge_agent``) into the venv, must
stop the build. The real wheelhouse is checked in tests/integration/test_package_install.py.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from edge_agent.config.loader import load_config

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / "systemd" / "edge-agent.env.example"


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


dw = _release_module()


def _wheel(
    directory: Path, filename: str, files: list[str], top_level: list[str] | None = None
) -> Path:
    """A wheel whose RECORD lists ``files`` (and a top_level.txt when given)."""
    name, version = filename.split("-")[:2]
    info = f"{name}-{version}.dist-info"
    path = directory / filename
    with zipfile.ZipFile(path, "w") as archive:
        for member in files:
            archive.writestr(member, "")
        record = [*files, f"{info}/METADATA"]
        if top_level is not None:
            archive.writestr(f"{info}/top_level.txt", "\n".join(top_level) + "\n")
            record.append(f"{info}/top_level.txt")
        archive.writestr(f"{info}/METADATA", f"Name: {name}\nVersion: {version}\n")
        archive.writestr(f"{info}/RECORD", "".join(f"{m},," + "\n" for m in record))
    return path


@pytest.fixture
def ours(tmp_path: Path) -> Path:
    return _wheel(
        tmp_path,
        "edge_agent-0.1.0-py3-none-any.whl",
        ["edge_agent/__init__.py", "drivers/__init__.py", "simulators/profiles/demo-plant.yaml"],
    )


def test_our_top_level_names_are_read_from_the_record(ours: Path) -> None:
    assert dw.top_level_names(ours) == {"edge_agent", "drivers", "simulators"}


@pytest.mark.parametrize(
    ("files", "top_level", "clash"),
    [
        (["drivers/__init__.py", "other/__init__.py"], None, "drivers"),  # a package
        (["simulators.py"], None, "simulators"),  # a module
        (["edge_agent.cpython-311-x86_64-linux-gnu.so"], None, "edge_agent"),  # compiled
        (["evil-1.0.data/purelib/drivers/x.py"], None, "drivers"),  # via .data/purelib
        ([], ["simulators"], "simulators"),  # named by setuptools' top_level.txt only
    ],
)
def test_a_wheel_installing_one_of_our_names_stops_the_build(
    tmp_path: Path, ours: Path, files: list[str], top_level: list[str] | None, clash: str
) -> None:
    evil = _wheel(tmp_path, "evil-1.0-py3-none-any.whl", files, top_level)
    with pytest.raises(dw.WheelhouseError, match=rf"evil-1\.0-py3-none-any\.whl installs {clash}"):
        dw.check_no_shadowing(ours, [evil])


def test_other_wheels_pass_and_scripts_or_pth_files_are_not_names(
    tmp_path: Path, ours: Path
) -> None:
    fine = _wheel(
        tmp_path,
        "fine-1.0-py3-none-any.whl",
        ["fine/__init__.py", "fine-1.0.data/scripts/drivers", "drivers.pth", "_fine_c.abi3.so"],
    )
    assert dw.top_level_names(fine) == {"fine", "_fine_c"}
    assert dw.check_no_shadowing(ours, [fine]) == {"edge_agent", "drivers", "simulators"}


@pytest.mark.parametrize(
    ("filename", "arch", "runs"),
    [
        ("pure-1.0-py3-none-any.whl", "arm64", "pure Python"),
        ("six-1.17.0-py2.py3-none-any.whl", "amd64", "pure Python"),
        ("c-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "arm64",
         "aarch64, glibc 2.17+"),
        ("c-1.0-cp38-abi3-manylinux_2_28_x86_64.whl", "amd64", "x86_64, glibc 2.28+"),
        ("c-1.0-cp311-cp311-manylinux1_x86_64.whl", "amd64", "x86_64, glibc 2.5+"),
    ],
)  # fmt: skip
def test_wheels_that_run_on_the_target(filename: str, arch: str, runs: str) -> None:
    wheel = dw.Wheel.of(Path(filename))
    assert dw.check_runs_on(wheel, arch, (3, 11)) == runs


@pytest.mark.parametrize(
    ("filename", "arch", "why"),
    [
        ("c-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "arm64", "not for arm64"),
        ("c-1.0-cp311-cp311-musllinux_1_2_aarch64.whl", "arm64", "not for arm64"),
        ("c-1.0-cp311-cp311-linux_aarch64.whl", "arm64", "not for arm64"),
        ("c-1.0-cp311-cp311-manylinux_2_39_x86_64.whl", "amd64", "needs glibc 2.39"),
        ("c-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "amd64", "not for CPython 3.11"),
        ("c-1.0-cp312-abi3-manylinux_2_17_x86_64.whl", "amd64", "not for CPython 3.11"),
        ("c-1.0-py2-none-any.whl", "amd64", "not for CPython 3.11"),
    ],
)
def test_wheels_that_would_not_run_stop_the_build(filename: str, arch: str, why: str) -> None:
    with pytest.raises(dw.WheelhouseError, match=why):
        dw.check_runs_on(dw.Wheel.of(Path(filename)), arch, (3, 11))


def test_a_wheelhouse_with_an_sdist_is_refused(tmp_path: Path, ours: Path) -> None:
    (tmp_path / "needs-a-compiler-1.0.tar.gz").write_bytes(b"")
    with pytest.raises(dw.WheelhouseError, match=r"needs-a-compiler-1\.0\.tar\.gz"):
        dw.check_wheelhouse(tmp_path, ours, "amd64", (3, 11))


def test_pip_is_asked_for_every_manylinux_tag_up_to_debian_12s_glibc() -> None:
    tags = dw.platforms("arm64")
    assert tags[0] == "manylinux2014_aarch64"
    assert tags[-1] == "manylinux_2_36_aarch64"
    assert "manylinux_2_28_aarch64" in tags
    assert all(tag.endswith("_aarch64") for tag in tags)


def test_the_packaged_example_plant_is_valid_with_the_packaged_env_file() -> None:
    """/etc/edge-agent/plant.yaml as installed passes `check` with the env file's values."""
    env = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    config = load_config(ROOT / "release" / "plant.yaml", env=env)
    assert str(config.state_dir) == "/var/lib/edge-agent"  # the unit's StateDirectory
    assert [d.name for d in config.devices] == ["main-meter"]


def test_one_version_for_the_wheel_the_package_and_the_agent() -> None:
    """pyproject.toml and release/build_deb.py take the version edge_agent reports."""
    import tomllib

    import edge_agent

    with (ROOT / "pyproject.toml").open("rb") as file:
        pyproject = tomllib.load(file)
    assert "version" not in pyproject["project"]
    assert pyproject["project"]["dynamic"] == ["version"]
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "edge_agent.__version__"
    spec = importlib.util.spec_from_file_location("build_deb", ROOT / "release" / "build_deb.py")
    assert spec is not None
    assert spec.loader is not None
    build_deb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_deb)  # finds deb_wheels in sys.modules (loaded above)
    assert build_deb.project_version() == edge_agent.__version__

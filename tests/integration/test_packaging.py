"""``pip install .`` (not editable), then ``edge-agent demo`` from an unrelated directory.

The wheel is built from a copy of the source (a build in the checkout would leave
build/ and *.egg-info behind) and installed, without dependencies, into a fresh venv
that sees this machine's packages (``--system-site-packages``): no network needed
beyond the build backend the configured package index serves. The demo must then
find its plant file, its simulator profile and its templates inside the installed
package, not in a checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "edge_agent", "drivers", "simulators", "configs")
DEVICES = ("line-meter", "cnc-1", "press-1", "compressor-1", "compressor-meter")


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_sources(into: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(source, into / name)


def test_installed_package_runs_the_demo_from_anywhere(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS", "LINES")}
    source, wheels, venv, elsewhere = (tmp_path / n for n in ("src", "dist", "venv", "elsewhere"))
    source.mkdir()
    elsewhere.mkdir()
    _copy_sources(source)

    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, ".",
                 cwd=source, env=env)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("edge_agent-*.whl")

    made = _run(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    python, edge_agent = venv / "bin" / "python", venv / "bin" / "edge-agent"
    installed = _run(python, "-m", "pip", "install", "--no-deps", "--no-index", wheel,
                     cwd=elsewhere, env=env)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr

    where = _run(
        python,
        "-c",
        "import edge_agent.bundled as b, simulators.profile as p; "
        "print(b.__file__); print(b.configs_dir()); print(p.PROFILES_DIR)",
        cwd=elsewhere,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert Path(path).is_relative_to(venv), where.stdout  # the installed copy, not ours
    configs = Path(where.stdout.split()[1])
    assert (configs / "demo-plant.yaml").is_file()
    assert (configs / "schema.json").is_file()
    # The web console's pages and its chart library (with the licence) travel too.
    static = Path(where.stdout.split()[0]).parent / "console" / "static"
    for page in ("index.html", "login.html", "app.js", "i18n.js", "style.css"):
        assert (static / page).is_file(), page
    for vendored in ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE"):
        assert (static / "vendor" / "uplot" / vendored).is_file(), vendored

    demo = _run(edge_agent, "demo", "--duration", "5", cwd=elsewhere, env=env)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    final = demo.stdout.split("final values:", 1)[1].splitlines()
    for device in DEVICES:
        (row,) = (line for line in final if line.split()[:1] == [device])
        assert row.split()[1] == "online", demo.stdout
        assert "=" in row, demo.stdout  # its values
    assert "web console: http://127.0.0.1:15080/console/" in demo.stdout
    assert "kpi cnc-1: " in demo.stdout
    assert "OEE: waiting for the first part" in demo.stdout

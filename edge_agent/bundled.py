"""Where the files shipped with edge-agent live: example plants and device templates.

In a source checkout they are the repository's ``configs/`` directory, which
``edge_agent/configs`` links to. An installed package (``pip install .``) carries the
same files in ``edge_agent/configs`` (package data, following that link when the wheel is
built); :func:`configs_dir` finds either, so ``edge-agent demo`` and the bundled templates
work from any directory.
"""

from __future__ import annotations

from pathlib import Path

#: ``edge-agent demo``'s fixed ports: the simulators' Modbus gateways and the web console.
DEMO_PORTS = (15020, 15021)
DEMO_CONSOLE_PORT = 15080

_PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"
_SOURCE_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def configs_dir() -> Path:
    """The directory of the bundled example plants (``demo-plant.yaml``) and ``templates/``."""
    # The package's copy first: installed, it is the only one; in a checkout it is the
    # link to configs/ (a checkout without symbolic links falls back to configs/ itself).
    if _PACKAGE_CONFIGS.is_dir():
        return _PACKAGE_CONFIGS
    return _SOURCE_CONFIGS


def templates_dir() -> Path:
    """The directory of the bundled device templates (one YAML file per device model)."""
    return configs_dir() / "templates"

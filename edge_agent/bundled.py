"""Where the files shipped with edge-agent live: example plants and device templates.

In a source checkout they are the repository's ``configs/`` directory. An installed
package (``pip install .``) carries the same files; :func:`configs_dir` finds either, so
``edge-agent demo`` and the bundled templates work from any directory.
"""

from __future__ import annotations

from pathlib import Path

_SOURCE_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def configs_dir() -> Path:
    """The directory of the bundled example plants (``demo-plant.yaml``) and ``templates/``."""
    return _SOURCE_CONFIGS


def templates_dir() -> Path:
    """The directory of the bundled device templates (one YAML file per device model)."""
    return configs_dir() / "templates"

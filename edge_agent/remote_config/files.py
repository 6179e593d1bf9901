"""Writing the plant file so that a crash or a power cut leaves the old or the new file,
never half of one, and keeping the last known good beside it.

The pushed file is written to a temporary file in the plant file's own directory
(same file system, so the rename is atomic; relative paths in it, templates_dir and
TLS files, resolve as they will once it is the plant file), fsynced, validated and
applied from there, and only then renamed over the plant file, followed by an fsync
of the directory so the rename itself survives a power cut. The file it replaces is
first copied, the same way, to ``<plant file>.last-good``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

LAST_GOOD_SUFFIX = ".last-good"


def last_good_path(plant_file: Path) -> Path:
    return plant_file.with_name(plant_file.name + LAST_GOOD_SUFFIX)


def temp_path(plant_file: Path, label: str) -> Path:
    """A hidden name beside the plant file (``.plant.yaml.v12.tmp``)."""
    return plant_file.with_name(f".{plant_file.name}.{label}.tmp")


def write_temp(plant_file: Path, label: str, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``plant_file``, fsynced, with the plant
    file's permission bits (0600 when there is none). An old one of the same name (a
    crash) is replaced. Raises OSError."""
    path = temp_path(plant_file, label)
    try:
        mode = stat.S_IMODE(plant_file.stat().st_mode)
    except OSError:
        mode = 0o600
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return path


def replace(temp: Path, target: Path) -> None:
    """Rename ``temp`` over ``target`` and fsync the directory. Raises OSError."""
    os.replace(temp, target)
    fsync_dir(target.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_atomically(source: Path, target: Path, label: str) -> None:
    """``target`` becomes a copy of ``source``, all at once. Raises OSError."""
    replace(write_temp(target, label, source.read_bytes()), target)


def discard(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

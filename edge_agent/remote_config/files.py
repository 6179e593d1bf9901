"""Writing the plant file so that a crash or a power cut leaves the old or the new file,
never half of one, and keeping the last known good beside it.

The pushed file is written to a temporary file in the plant file's own directory
(same file system, so the rename is atomic; relative paths in it, templates_dir and
TLS files, resolve as they will once it is the plant file), fsynced, validated and
applied from there, and only then renamed over the plant file, followed by an fsync
of the directory so the rename itself survives a power cut. The file it replaces is
first copied, the same way, to ``<plant file>.last-good``: the last known good is
always the file that ran before the last document (or rollback) replaced it.

A plant file that is a symbolic link has its target replaced (:func:`target_of`); the
link stays. Temporary files get a new name each time and are removed when a write
fails; only a crash between writing one and renaming it leaves one behind (hidden,
``.plant.yaml.v12.*.tmp``; safe to delete).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

LAST_GOOD_SUFFIX = ".last-good"


def last_good_path(plant_file: Path) -> Path:
    return plant_file.with_name(plant_file.name + LAST_GOOD_SUFFIX)


def target_of(plant_file: Path) -> Path:
    """The file to replace: a symbolic link's target (the link stays a link, as an
    administrator made it), else the plant file itself."""
    return Path(os.path.realpath(plant_file))


def temp_prefix(plant_file: Path, label: str) -> str:
    """Hidden names beside the plant file: ``.plant.yaml.v12.<random>.tmp``."""
    return f".{plant_file.name}.{label}."


def write_temp(plant_file: Path, label: str, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``plant_file``, fsynced, with the plant
    file's permission bits (0600 when there is none). Its name is new each time, so a
    file or directory left in the way (a crash, a mistake) never blocks a write; it is
    removed if the write fails. Raises OSError."""
    try:
        mode = stat.S_IMODE(plant_file.stat().st_mode)
    except OSError:
        mode = 0o600
    fd, name = tempfile.mkstemp(
        prefix=temp_prefix(plant_file, label), suffix=".tmp", dir=plant_file.parent
    )
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
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
    """``target`` becomes a copy of ``source``, all at once. Raises OSError (and leaves
    no temporary file)."""
    write_atomically(target, label, source.read_bytes())


def write_atomically(target: Path, label: str, data: bytes) -> None:
    """``target`` holds ``data``, all at once. Raises OSError (and leaves no temporary
    file)."""
    temp = write_temp(target, label, data)
    try:
        replace(temp, target)
    except BaseException:
        discard(temp)
        raise


def discard(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def install(pushed: Path, target: Path) -> None:
    """``target`` copied to its ``.last-good``, then ``pushed`` renamed over it (each step
    atomic). Raises OSError (``pushed`` is left for the caller to discard)."""
    copy_atomically(target, last_good_path(target), "new")
    replace(pushed, target)


_hashed: dict[Path, tuple[tuple[int, int, int], str]] = {}


def sha256_of(path: Path) -> str | None:
    """The SHA-256 of the file at ``path`` (None: it cannot be read). Kept while the
    file's inode, size and time are unchanged: every report names the running version,
    and a plant file may be megabytes, hashed on the event loop."""
    try:
        info = path.stat()
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        known = _hashed.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
    _hashed.clear()  # one plant file per agent
    _hashed[path] = (stamp, digest)
    return digest

"""Can the agent keep its state where the plant file says? Asked by ``edge-agent check``.

The outbox and the metrics' accumulators live in ``state_dir``; the agent creates it
(and its parents) on start. A relative path resolves against the working directory,
which under the systemd unit is ``/``: ``./state`` becomes ``/state``, read-only
there (``ProtectSystem=strict``). ``check`` shows the path resolved and says why it
could not be created, before the agent fails on its first write.
"""

from __future__ import annotations

import errno
import os
import pwd
from pathlib import Path


def resolved(path: Path) -> Path:
    """``path`` as an absolute path, against the current directory (symlinks kept)."""
    return Path(os.path.abspath(path))


def state_dir_problem(path: Path) -> str | None:
    """Why the agent could not create or write ``path`` (None if it can), checked as the
    user running ``check``."""
    target = resolved(path)
    existing = target
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing == target:
        if not target.is_dir():
            return f"{target} exists and is not a directory"
        return _not_writable(target, f"{target} is not writable")
    if not existing.is_dir():
        return f"{target} cannot be created: {existing} is a file, not a directory"
    return _not_writable(existing, f"{target} cannot be created: {existing}")


def _not_writable(directory: Path, what: str) -> str | None:
    if os.access(directory, os.W_OK | os.X_OK):
        return None
    if _read_only(directory):
        return f"{what} is on a read-only file system"
    return f"{what} is not writable by user {_user()} (permission denied)"


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError as exc:  # pragma: no cover - statvfs of an existing directory
        return exc.errno == errno.EROFS


def _user() -> str:
    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:  # a uid without a passwd entry (systemd DynamicUser, containers)
        return f"uid {uid}"

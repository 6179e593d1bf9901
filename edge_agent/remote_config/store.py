"""The versions remote configuration has applied, kept in the state directory.

``<state_dir>/remote-config.json`` holds the highest version ever applied (a document
must be newer: a replay, even after a restart, is refused), the version and hash of the
file running now, and those of the last known good (what a rollback puts back). A
version that was applied and then rolled back stays the highest: the document that
was undone cannot be replayed either. It also holds the ids of the keys an applied
document dropped (``revoked``): they sign nothing from then on, even when a local edit
puts back a file that lists them, until a later document lists them again. A key is
revoked only once its document is applied and written (:mod:`.revocation`), and the
keys the running document revoked (``revoked_by_running``) are trusted again when a
rollback undoes it: the file put back must keep a key that can sign the next document.

The highest version is recorded before a document is applied: a crash at any point
after that can burn a version (the document did not take effect; sign the next one)
but never let an older document in.

The store lives in ``state_dir``. A document (or a reload) that moves ``state_dir``
carries the store over: it is written to the new directory too before the document is
applied, and the store of the directory used before is merged into the running
``state_dir``'s (:func:`merge`, :mod:`.carry`), so a directory moved back to does not
bring back its old store.

Written atomically (temporary file, fsync, rename, fsync of the directory). A store
that exists but cannot be read refuses every document until it is repaired or removed
(deny by default: an unknown last version would let any old document back in).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_agent.remote_config.files import write_atomically

FILE_NAME = "remote-config.json"


class StoreError(Exception):
    """The store cannot be read or written; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class Applied:
    """One plant file: its remote version (None: a local file, never pushed) and hash."""

    version: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Versions:
    highest: int = 0
    running: Applied = field(default_factory=Applied)
    last_good: Applied = field(default_factory=Applied)
    #: Ids of keys an applied document dropped: not trusted, whatever a file lists.
    revoked: tuple[str, ...] = ()
    #: The ids of ``revoked`` the running document revoked: a rollback of it trusts
    #: them again (the file it puts back lists them, and must be able to move on).
    revoked_by_running: tuple[str, ...] = ()

    def running_version(self, file_sha256: str) -> int | None:
        """The running version if the plant file is still the one it came as (else the
        file was edited locally: None)."""
        return self.running.version if self.running.sha256 == file_sha256 else None


class VersionStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / FILE_NAME

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Versions:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Versions()
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"{self.path}: cannot read it: {exc}") from None
        try:
            data = json.loads(text)
            return Versions(
                highest=_whole(data["highest"]),
                running=_applied(data["running"]),
                last_good=_applied(data["last_good"]),
                revoked=_ids(data.get("revoked", [])),
                revoked_by_running=_ids(data.get("revoked_by_running", [])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{self.path}: damaged ({exc}); every document is refused until it is "
                "repaired or removed (removing it lets any older document back in)"
            ) from None

    def save(self, versions: Versions) -> None:
        data = json.dumps(asdict(versions), indent=2).encode("utf-8")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomically(self.path, "new", data)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write it: {exc}") from None


def _whole(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a version")
    return value


def _applied(value: Any) -> Applied:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    version, sha256 = value["version"], value["sha256"]
    if sha256 is not None and not isinstance(sha256, str):
        raise TypeError("sha256 is not a string")
    return Applied(None if version is None else _whole(version), sha256)


def _ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("revoked is not a list of key ids")
    return tuple(value)


def merge(running: Versions, other: Versions) -> Versions:
    """One store from the running ``state_dir``'s and another directory's (a reload or
    a document moved ``state_dir``): the one with the higher version wins whole, with
    its revoked keys (each save writes the full set, so the newer store holds every
    revocation made since, and a key a later document listed again stays trusted; a
    union would revoke it again and could leave the running file no key). Equal
    versions: the running directory's, with the revoked keys of both."""
    if other.highest > running.highest:
        return other
    if other.highest == running.highest:
        revoked = tuple(sorted(set(running.revoked) | set(other.revoked)))
        return replace(running, revoked=revoked)
    return running


def revoked_after(revoked: tuple[str, ...], old: set[str], new: set[str]) -> tuple[str, ...]:
    """The revoked key ids once a file listing ``new`` replaces one listing ``old``: a
    key dropped is revoked; one the new file lists (a document signed by a trusted key
    listing it again) is trusted again."""
    return tuple(sorted((set(revoked) | (old - new)) - new))

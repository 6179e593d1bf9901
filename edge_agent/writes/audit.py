"""The audit log: every command, accepted or refused, one JSON line, on disk before the
answer goes out.

``<state_dir>/audit/audit.jsonl`` (directory 0700, files 0600), rotated by size to
``audit.jsonl.1`` (newest) ... ``audit.jsonl.<keep>`` (oldest, dropped next). Each
append is one ``write`` of a whole line to a file opened ``O_APPEND``, then ``fsync``
(and the directory's ``fsync`` when a file was created or renamed), so a record the
gate has answered with survives a power cut. A crash in the middle of an append leaves
at most one torn last line: the next append starts on a fresh line and the readers
skip the torn one and say so. An append that fails raises :class:`OSError`; the gate
then refuses writes it could not audit.

``fsync`` runs on the event loop: appends are rare (rate-limited writes and their
refusals) and it costs about 0.1-0.3 ms on the CI machine's ext4 (a few ms on an SD
card), so ``append`` is synchronous and records keep the order of the calls.

A record never holds a secret: keys named like one (:func:`is_secret_key`, plus
``key`` and ``signature``) are dropped at any depth and registered secrets are
redacted from every text (:func:`edge_agent.redaction.redact`), whatever the caller
put in it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_agent.model import iso_utc_ms
from edge_agent.writes.scrub import clean

#: The live file's name in the audit directory; rotated ones add ``.1``, ``.2`` ...
FILE_NAME = "audit.jsonl"
#: Keys dropped from a record besides those :func:`is_secret_key` names.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def audit_directory(state_dir: Path) -> Path:
    """Where a plant's audit log lives: ``<state_dir>/audit``."""
    return state_dir / "audit"


def parse_time_ns(text: str) -> int | None:
    """``2026-12-05T06:00:00.123Z`` (any RFC 3339 with an offset) in ns since the epoch,
    None when ``text`` is not such a time."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return datetime_ns(moment)


def datetime_ns(moment: dt.datetime) -> int:
    """An aware datetime in ns since the epoch (exact to its microsecond)."""
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 1000


@dataclass(frozen=True, slots=True)
class Skipped:
    """A line a reader could not take as a record, and why."""

    file: Path
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: skipped: {self.why}"


class AuditLog:
    """Appends records (the agent) and reads them back (the agent at start, ``edge-agent
    audit``). Nothing is opened or created until the first append."""

    def __init__(self, directory: Path, max_bytes: int, keep: int, name: str = FILE_NAME) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError("max_bytes and keep must be at least 1")
        self.directory = directory
        self.max_bytes = max_bytes
        self.keep = keep
        #: The live file's name (write commands: ``audit.jsonl``; remote configuration
        #: keeps its own, ``config.jsonl``, beside it).
        self.name = name
        self.path = directory / name
        self._fd: int | None = None
        #: What the last :meth:`read` or :meth:`recent_ids` could not take as records.
        self.skipped: list[Skipped] = []

    # ------------------------------------------------------------------ writing

    def ready(self) -> str:
        """Make the log's directory now (0700), not at the first command: `edge-agent
        audit` then finds an empty log, not none (which says "wrong state_dir?"). Why
        the log cannot be written there, or ``""``."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            return f"{self.directory}: {exc.strerror or exc}"
        if not os.access(self.directory, os.W_OK | os.X_OK):
            return f"{self.directory}: not writable by this user"
        return ""

    def append(self, record: Mapping[str, object]) -> None:
        """Write ``record`` (plus ``time`` if it has none) as one line, fsynced.

        Raises OSError when it is not on disk (a full disk, permissions, a read-only
        file system): the caller must then not act on the command.
        """
        kept = clean(record)
        kept.setdefault("time", iso_utc_ms(time.time_ns()))
        line = (json.dumps(kept, ensure_ascii=False, allow_nan=False) + "\n").encode()
        try:
            fd = self._open()
            size = os.fstat(fd).st_size
            if size > 0 and size + len(line) > self.max_bytes:
                self._rotate()
                fd = self._open()
                size = 0
            self._write_whole(fd, line, size)
            os.fsync(fd)
        except OSError:
            self.close()  # the next append opens afresh (the disk may have room again)
            raise

    def close(self) -> None:
        """Close the open file (the next append reopens it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _open(self) -> int:
        """The live file's descriptor, opened (and created, 0600) when needed; reopened
        when the file was moved away or deleted behind our back."""
        if self._fd is not None:
            try:
                same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return self._fd
            self.close()
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True)
            _sync_directory(self.directory.parent)
        if self.directory.stat().st_mode & 0o077:
            os.chmod(self.directory, 0o700)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
            if created:
                _sync_directory(self.directory)
            else:
                self._end_torn_line(fd)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def _end_torn_line(self, fd: int) -> None:
        """After a crash mid-append the file ends without a newline: end that line so the
        next record does not run into it (readers then skip it as torn)."""
        size = os.fstat(fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as file:
            file.seek(size - 1)
            last = file.read(1)
        if last != b"\n":
            self._write_whole(fd, b"\n", size)
            os.fsync(fd)

    @staticmethod
    def _write_whole(fd: int, data: bytes, size_before: int) -> None:
        """All of ``data`` or nothing: a short write (a full disk) is cut off again, so
        no half record stays in the file."""
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError:
            if written:
                os.ftruncate(fd, size_before)
            raise

    def _rotate(self) -> None:
        """audit.jsonl -> .1 -> .2 ... -> .keep; the oldest (and any beyond ``keep``,
        left by a larger ``keep`` before) dropped."""
        self.close()
        for number, path in self._rotated():
            if number >= self.keep:
                path.unlink()
        for number in range(self.keep - 1, 0, -1):
            older = self.directory / f"{self.name}.{number}"
            if older.exists():
                older.rename(self.directory / f"{self.name}.{number + 1}")
        self.path.rename(self.directory / f"{self.name}.1")
        _sync_directory(self.directory)

    # ------------------------------------------------------------------ reading

    def _rotated(self) -> list[tuple[int, Path]]:
        """The rotated files there are, by number (1 newest)."""
        found = []
        for path in self.directory.glob(f"{self.name}.*"):
            suffix = path.name.removeprefix(f"{self.name}.")
            if suffix.isdigit():
                found.append((int(suffix), path))
        return sorted(found)

    def files(self) -> list[Path]:
        """Every file of the log, oldest first (missing directory: none)."""
        if not self.directory.is_dir():
            return []
        older = [path for _, path in reversed(self._rotated())]
        return older + ([self.path] if self.path.exists() else [])

    def read(self, since_ns: int | None = None) -> Iterator[dict[str, object]]:
        """Records at or after ``since_ns`` (all with None), oldest first, across the
        rotated files. Lines that are not records are left out and listed in
        :attr:`skipped` (a torn last line: a crash in the middle of an append).
        Raises OSError when a file cannot be read (permissions)."""
        self.skipped = []
        for path in self.files():
            for time_ns, record in self._records(path):
                if since_ns is None or time_ns >= since_ns:
                    yield record

    def recent_ids(self, since_ns: int) -> dict[str, tuple[int, str]]:
        """id -> (time ns, outcome) of the records at or after ``since_ns``: the ids the
        gate must still refuse as duplicates after a restart (an id seen twice: its
        first record). Reads the newest files only, down to the first one that starts
        before ``since_ns``."""
        self.skipped = []
        found: dict[str, tuple[int, str]] = {}
        for path in reversed(self.files()):
            oldest: int | None = None
            for time_ns, record in self._records(path):
                oldest = time_ns if oldest is None else min(oldest, time_ns)
                command = record.get("id")
                if not (time_ns >= since_ns and isinstance(command, str) and command):
                    continue
                if command not in found or time_ns < found[command][0]:
                    # The first handling counts: a copy refused as a duplicate later
                    # must not hide that the command was applied.
                    outcome = record.get("outcome")
                    found[command] = (time_ns, outcome if isinstance(outcome, str) else "")
            if oldest is not None and oldest < since_ns:
                break  # older files hold older records only
        return found

    def _records(self, path: Path) -> Iterator[tuple[int, dict[str, object]]]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # rotated away between listing and reading
            return
        lines = data.split(b"\n")
        torn_at = len(lines) if lines[-1] else 0  # a last line without its newline
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            if number == torn_at:
                self.skipped.append(
                    Skipped(path, number, f"torn last line ({len(raw)} bytes, a crash mid-write)")
                )
                continue
            record, why = _record(raw)
            if record is None:
                self.skipped.append(Skipped(path, number, why))
                continue
            time_ns = parse_time_ns(str(record.get("time", "")))
            if time_ns is None:
                self.skipped.append(Skipped(path, number, "no valid time"))
                continue
            yield time_ns, record


def _sync_directory(directory: Path) -> None:
    """Make a file's creation or renaming durable (the directory entry itself)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record(raw: bytes) -> tuple[dict[str, object] | None, str]:
    try:
        value = json.loads(raw)
    except ValueError:  # not UTF-8 or not JSON (UnicodeDecodeError is a ValueError)
        return None, f"not a JSON line ({len(raw)} bytes; a torn write ended here?)"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    return value, ""

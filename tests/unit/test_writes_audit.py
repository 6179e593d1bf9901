"""The audit log: one fsynced JSON line per command, rotated by size, read back across
files, a crash's torn line skipped and said, never a secret."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.redaction import forget_secrets, register_secrets
from edge_agent.writes import audit as audit_module
from edge_agent.writes.audit import AuditLog, Skipped, parse_time_ns

T0 = "2026-12-05T06:00:00.000Z"


def _time(seconds: int) -> str:
    return f"2026-12-05T06:00:{seconds:02d}.000Z"


def _record(command: str, seconds: int = 0, outcome: str = "applied") -> dict[str, object]:
    return {"id": command, "time": _time(seconds), "device": "press-1", "outcome": outcome}


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    audit = AuditLog(tmp_path / "state" / "audit", max_bytes=10_000, keep=3)
    yield audit
    audit.close()


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_append_is_one_whole_line_in_order(log: AuditLog) -> None:
    for n in range(3):
        log.append(_record(f"c{n}", n))
    assert [r["id"] for r in _lines(log.path)] == ["c0", "c1", "c2"]
    assert log.path.read_bytes().endswith(b"\n")
    assert [r["id"] for r in log.read()] == ["c0", "c1", "c2"]
    assert log.skipped == []


def test_the_directory_is_0700_and_the_file_0600(log: AuditLog) -> None:
    log.append(_record("c0"))
    assert stat.S_IMODE(log.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600


def test_wider_permissions_left_by_someone_are_narrowed(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    (directory / "audit.jsonl").write_text("")
    os.chmod(directory / "audit.jsonl", 0o644)
    audit = AuditLog(directory, 10_000, 2)
    try:
        audit.append(_record("c0"))
    finally:
        audit.close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "audit.jsonl").stat().st_mode) == 0o600


def test_every_append_is_fsynced_and_a_new_file_s_directory_too(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.fsync is wrapped (the real one still runs) to count what it was given."""
    synced: list[str] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        real_fsync(fd)
        mode = os.fstat(fd).st_mode
        synced.append("directory" if stat.S_ISDIR(mode) else "file")

    monkeypatch.setattr(audit_module.os, "fsync", counting_fsync)
    log.append(_record("c0"))
    # The state directory (audit/ created in it), audit/ (the file created), the record.
    assert synced == ["directory", "directory", "file"]
    synced.clear()
    log.append(_record("c1"))
    assert synced == ["file"]


def test_a_record_without_time_gets_one_and_a_time_given_is_kept(log: AuditLog) -> None:
    log.append({"id": "a"})
    log.append({"id": "b", "time": T0})
    first, second = _lines(log.path)
    assert parse_time_ns(str(first["time"])) is not None
    assert second["time"] == T0


def test_a_torn_last_line_is_skipped_and_said(log: AuditLog) -> None:
    log.append(_record("c0"))
    log.append(_record("c1", 1))
    log.close()
    with log.path.open("ab") as file:  # a crash in the middle of the third append
        file.write(b'{"id": "c2", "time": "2026-12-05T06:0')
    assert [r["id"] for r in log.read()] == ["c0", "c1"]
    assert len(log.skipped) == 1
    assert log.skipped[0].line == 3
    assert "torn last line" in str(log.skipped[0])


def test_the_next_append_after_a_crash_starts_a_fresh_line(log: AuditLog) -> None:
    log.append(_record("c0"))
    log.close()
    with log.path.open("ab") as file:
        file.write(b'{"id": "c1", "ti')
    reopened = AuditLog(log.directory, log.max_bytes, log.keep)
    try:
        reopened.append(_record("c2", 2))
    finally:
        reopened.close()
    assert [r["id"] for r in reopened.read()] == ["c0", "c2"]
    [skipped] = reopened.skipped
    assert skipped.line == 2
    assert "not a JSON line" in skipped.why


def test_lines_that_are_not_records_are_skipped_with_a_reason(log: AuditLog) -> None:
    log.directory.mkdir(parents=True)
    log.path.write_bytes(
        b'[1, 2]\n{"id": "no-time"}\n\xff\xfe\n\n' + json.dumps(_record("good")).encode() + b"\n"
    )
    assert [r["id"] for r in log.read()] == ["good"]
    assert [s.why for s in log.skipped] == [
        "not a JSON object",
        "no valid time",
        "not a JSON line (2 bytes; a torn write ended here?)",
    ]


def test_rotation_keeps_keep_files_and_reads_oldest_first(tmp_path: Path) -> None:
    line = len(json.dumps(_record("c00", 0)) + "\n")
    audit = AuditLog(tmp_path / "audit", max_bytes=2 * line, keep=2)  # two records a file
    try:
        for n in range(9):
            audit.append(_record(f"c{n:02d}", n))
    finally:
        audit.close()
    names = sorted(p.name for p in audit.directory.iterdir())
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert [r["id"] for r in _lines(audit.directory / "audit.jsonl.2")] == ["c04", "c05"]
    assert [r["id"] for r in _lines(audit.directory / "audit.jsonl.1")] == ["c06", "c07"]
    assert [r["id"] for r in _lines(audit.path)] == ["c08"]
    assert [r["id"] for r in audit.read()] == ["c04", "c05", "c06", "c07", "c08"]


def test_rotation_drops_files_beyond_a_keep_that_shrank(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    directory.mkdir(mode=0o700)
    for number in (1, 2, 3, 4):
        (directory / f"audit.jsonl.{number}").write_text(json.dumps(_record(f"old{number}")) + "\n")
    (directory / "audit.jsonl").write_text(json.dumps(_record("live")) + "\n")
    audit = AuditLog(directory, max_bytes=10_000, keep=2)
    try:
        audit._rotate()
    finally:
        audit.close()
    assert sorted(p.name for p in directory.iterdir()) == ["audit.jsonl.1", "audit.jsonl.2"]
    assert [r["id"] for r in audit.read()] == ["old1", "live"]


def test_a_file_moved_away_behind_the_log_s_back_is_recreated(log: AuditLog) -> None:
    log.append(_record("c0"))
    log.path.rename(log.directory / "elsewhere")
    log.append(_record("c1", 1))
    assert [r["id"] for r in _lines(log.path)] == ["c1"]


def test_read_since_leaves_out_older_records(log: AuditLog) -> None:
    for n in range(5):
        log.append(_record(f"c{n}", n * 10))
    since = parse_time_ns(_time(20))
    assert since is not None
    assert [r["id"] for r in log.read(since)] == ["c2", "c3", "c4"]


def test_recent_ids_keep_the_first_handling_of_an_id(log: AuditLog) -> None:
    log.append(_record("old", 0))
    log.append(_record("a", 10, "applied"))
    log.append(_record("a", 11, "refused"))  # the duplicate, refused
    log.append(_record("b", 12, "refused"))
    since = parse_time_ns(_time(5))
    assert since is not None
    ids = log.recent_ids(since)
    assert ids == {
        "a": (since + 5_000_000_000, "applied"),
        "b": (since + 7_000_000_000, "refused"),
    }


def test_recent_ids_stop_at_the_first_file_older_than_since(tmp_path: Path) -> None:
    line = len(json.dumps(_record("c0", 0)) + "\n")
    audit = AuditLog(tmp_path / "audit", max_bytes=2 * line, keep=5)
    try:
        for n in range(6):
            audit.append(_record(f"c{n}", n))
    finally:
        audit.close()
    oldest = audit.directory / "audit.jsonl.2"
    oldest.write_text(oldest.read_text() + "garbage\n")
    since = parse_time_ns(_time(3))
    assert since is not None
    assert sorted(audit.recent_ids(since)) == ["c3", "c4", "c5"]
    assert audit.skipped == []  # audit.jsonl.2 (c0, c1) was never read
    assert sorted(audit.recent_ids(0)) == [f"c{n}" for n in range(6)]
    assert [s.file.name for s in audit.skipped] == ["audit.jsonl.2"]


def test_a_missing_directory_reads_as_empty(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "nothing" / "audit", 10_000, 2)
    assert list(audit.read()) == []
    assert audit.recent_ids(0) == {}
    assert not (tmp_path / "nothing").exists()


def test_no_secret_is_kept_whatever_the_caller_puts_in(log: AuditLog) -> None:
    register_secrets(["hunter2-the-key"])
    try:
        log.append(
            {
                "id": "c0",
                "time": T0,
                "password": "p4ss",
                "key": "hunter2-the-key",
                "signature": "ab12cd",
                "signed": True,
                "requested": {"user": "op", "api_key": "zzz", "nested": [{"token": "t"}]},
                "reason": "bad signature for hunter2-the-key",
            }
        )
    finally:
        forget_secrets()
    text = log.path.read_text()
    for secret in ("p4ss", "hunter2", "ab12cd", "zzz", '"t"'):
        assert secret not in text
    [record] = _lines(log.path)
    assert record == {
        "id": "c0",
        "time": T0,
        "signed": True,
        "requested": {"user": "op", "nested": [{}]},
        "reason": "bad signature for ***",
    }


def test_values_json_cannot_hold_are_kept_as_text(log: AuditLog) -> None:
    log.append({"id": "c0", "time": T0, "requested": float("nan"), "before": float("inf")})
    [record] = _lines(log.path)
    assert (record["requested"], record["before"]) == ("nan", "inf")


def test_an_object_that_is_not_json_is_a_loud_error(log: AuditLog) -> None:
    with pytest.raises(TypeError, match="bytes is not JSON"):
        log.append({"id": "c0", "canonical_text": b"secret bytes"})
    assert not log.path.exists()


def test_an_append_that_cannot_be_made_raises_oserror(tmp_path: Path) -> None:
    (tmp_path / "audit").write_text("a file where the directory should be")
    audit = AuditLog(tmp_path / "audit", 10_000, 2)
    with pytest.raises(OSError, match="audit"):
        audit.append(_record("c0"))


def test_a_short_write_leaves_no_half_record(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills in the middle of a record: it is cut off again, OSError raised,
    and the next append (room again) writes a whole line."""
    log.append(_record("c0"))
    real_write = os.write
    calls = 0

    def full_after_ten_bytes(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audit_module.os, "write", full_after_ten_bytes)
    with pytest.raises(OSError, match="No space left"):
        log.append(_record("c1", 1))
    monkeypatch.setattr(audit_module.os, "write", real_write)
    log.append(_record("c2", 2))
    assert [r["id"] for r in log.read()] == ["c0", "c2"]
    assert log.skipped == []


def test_skipped_says_where() -> None:
    assert str(Skipped(Path("/s/audit.jsonl"), 7, "x")) == "/s/audit.jsonl:7: skipped: x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:01.500Z", 1_500_000_000),
        ("1970-01-01T08:00:01+08:00", 1_000_000_000),
        ("1970-01-01T00:00:01", None),  # no offset: not a time the log writes
        ("yesterday", None),
    ],
)
def test_parse_time_ns(text: str, expected: int | None) -> None:
    assert parse_time_ns(text) == expected

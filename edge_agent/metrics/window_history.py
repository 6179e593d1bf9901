"""The closed windows a baseline is fitted from: kept in the state directory, or read from CSV.

Each closed window of a baseline's kind becomes one :class:`Record` (window start and
end, the energy of its meters, its variables, its coverage), appended as one JSON line
to ``baseline-<name>.windows.jsonl`` in the state directory and synced to disk.

* **Settings.** Each record carries the key of the settings it was made under (the
  baseline's window, meters, machines and temperature: :attr:`BaselineSpec.record_key`).
  A fit takes only records of its own key: after such a change the old windows (hourly
  where daily ones are wanted, or the energy of other meters) stay in the file, bounded
  like the rest, and are not fitted. A record of a file written before keys existed has
  the key ``""`` and matches no settings.
* **No duplicates.** A record is identified by its key and window start; one already in
  the file is not appended again (after a crash between a window's close and the next
  state save, the restored window closes a second time: the first record stands).
* **Restarts.** The file is read at start; a torn last line (power cut while appending)
  is skipped with a warning and cut off the file, the lines before it are kept.
* **Bounded.** At most :data:`MAX_RECORDS` records are kept (hourly windows: about 2.3
  years; daily: decades). When the file holds :data:`COMPACT_AT` lines it is rewritten
  atomically (temporary file, fsync, rename) with the newest :data:`MAX_RECORDS`.

:func:`read_csv` reads a user's baseline data: a header naming ``energy_kwh`` and one
column per variable (``start`` optional, for the reader), one window per row; lines
starting with ``#`` are comments. Every bad row is an error naming its line. The file is
UTF-8 (with or without the BOM Excel's "CSV UTF-8" writes); failing that, GB18030, the
superset of the GBK that Excel on Chinese Windows writes as "CSV (Comma delimited)"
(:func:`csv_encoding` tells which, so ``check`` can say it guessed); failing both, an
error naming the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from edge_agent.metrics.store import atomic_write

log = structlog.get_logger("edge_agent.metrics")

MAX_RECORDS: Final = 20_000
COMPACT_AT: Final = 25_000
#: Columns of a baseline CSV besides the variables.
ENERGY_COLUMN: Final = "energy_kwh"
START_COLUMN: Final = "start"
#: A CSV larger than this is refused (a baseline needs windows, not a data lake).
MAX_CSV_ROWS: Final = 100_000


@dataclass(frozen=True, slots=True)
class Record:
    """One closed window of a baseline: energy, variables (None: unknown), coverage, and
    the key of the settings it was recorded under (module docstring)."""

    start_ns: int
    end_ns: int
    energy_kwh: float | None
    variables: dict[str, float | None]
    coverage: float
    key: str = ""

    def state(self) -> dict[str, Any]:
        return {
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "energy_kwh": self.energy_kwh,
            "variables": self.variables,
            "coverage": self.coverage,
            "key": self.key,
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Record:
        energy = data["energy_kwh"]
        return cls(
            start_ns=int(data["start_ns"]),
            end_ns=int(data["end_ns"]),
            energy_kwh=None if energy is None else float(energy),
            variables={
                str(k): None if v is None else float(v) for k, v in data["variables"].items()
            },
            coverage=float(data["coverage"]),
            key=str(data.get("key", "")),
        )


class WindowHistory:
    """A baseline's closed windows, oldest first; on disk when ``path`` is given."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: list[Record] = []
        self._kept: set[tuple[str, int]] = set()
        self._lines = 0
        if path is not None:
            self._read(path)

    def _read(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read baseline windows", path=str(path), error=str(exc))
            return
        if text and not text.endswith("\n"):
            self._cut_torn_tail(path)  # the next append must not join the torn line
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            self._lines += 1
            try:
                record = Record.load(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning(
                    "baseline windows: unreadable line skipped",
                    path=str(path),
                    line=number,
                    error=str(exc),
                )
                continue
            if (record.key, record.start_ns) not in self._kept:
                self._kept.add((record.key, record.start_ns))
                self.records.append(record)
        self.records.sort(key=lambda r: r.start_ns)

    @staticmethod
    def _cut_torn_tail(path: Path) -> None:
        try:
            data = path.read_bytes()
            with open(path, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            log.warning("cannot cut a torn baseline window line", path=str(path), error=str(exc))

    def add(self, record: Record) -> bool:
        """Keep ``record`` unless its window is already kept; False if it was."""
        if (record.key, record.start_ns) in self._kept:
            return False
        self._kept.add((record.key, record.start_ns))
        self.records.append(record)
        if self.path is None:
            del self.records[:-MAX_RECORDS]
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record.state(), separators=(",", ":")) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self._lines += 1
        except OSError as exc:
            log.error("cannot append a baseline window", path=str(self.path), error=str(exc))
        if self._lines >= COMPACT_AT:
            self.compact()
        return True

    def compact(self) -> None:
        """Keep the newest :data:`MAX_RECORDS`, rewriting the file atomically."""
        del self.records[:-MAX_RECORDS]
        self._kept = {(r.key, r.start_ns) for r in self.records}
        if self.path is None:
            return
        text = "".join(
            json.dumps(record.state(), separators=(",", ":")) + "\n" for record in self.records
        )
        try:
            atomic_write(self.path, text.encode("utf-8"))
            self._lines = len(self.records)
        except OSError as exc:
            log.error("cannot compact baseline windows", path=str(self.path), error=str(exc))

    def between(self, start_ns: int, end_ns: int) -> list[Record]:
        """Records of windows lying wholly inside ``[start_ns, end_ns)``, of any key."""
        return [r for r in self.records if start_ns <= r.start_ns and r.end_ns <= end_ns]


class CsvError(ValueError):
    """A baseline CSV that cannot be used; ``problems`` name their lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_csv(text: str, variables: list[str]) -> list[Record]:
    """Rows of a baseline CSV as records (window bounds 0: a CSV row is not dated here)."""
    # Comment lines (#...) become blank lines: the line numbers stay the file's.
    text = "\n".join("" if line.lstrip().startswith("#") else line for line in text.splitlines())
    reader = csv.reader(io.StringIO(text))
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    if header is None:
        raise CsvError(["the file has no header row (energy_kwh,<variable>...)"])
    header_line = reader.line_num
    columns = [c.strip() for c in header]
    problems: list[str] = []
    expected = [ENERGY_COLUMN, *variables]
    missing = [c for c in expected if c not in columns]
    unknown = [c for c in columns if c not in expected and c != START_COLUMN]
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if missing:
        problems.append(
            f"line {header_line}: no column {', '.join(missing)} (header: {','.join(columns)})"
        )
    if unknown:
        problems.append(
            f"line {header_line}: unknown column {', '.join(unknown)} "
            f"(allowed: {START_COLUMN}, {', '.join(expected)})"
        )
    if doubled:
        problems.append(f"line {header_line}: column {', '.join(doubled)} given twice")
    if problems:
        raise CsvError(problems)
    index = {c: columns.index(c) for c in expected}
    records: list[Record] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(records) >= MAX_CSV_ROWS:
            problems.append(f"line {line}: more than {MAX_CSV_ROWS} rows")
            break
        if len(row) != len(columns):
            problems.append(f"line {line}: {len(row)} cells, the header has {len(columns)}")
            continue
        values: dict[str, float] = {}
        for name, at in index.items():
            value = _number(row[at].strip())
            if value is None:
                problems.append(f"line {line}: {name} {row[at].strip()!r} is not a finite number")
            else:
                values[name] = value
        if len(values) != len(index):
            continue
        if values[ENERGY_COLUMN] < 0:
            problems.append(f"line {line}: {ENERGY_COLUMN} is negative")
            continue
        energy = values.pop(ENERGY_COLUMN)
        records.append(Record(0, 0, energy, dict(values), 1.0))
    if problems:
        raise CsvError(problems)
    if len(records) <= len(variables) + 1:
        raise CsvError(
            [f"{len(records)} rows: a fit of {len(variables) + 1} parameters needs more"]
        )
    return records


#: The encodings a baseline CSV is read in, in this order (module docstring).
UTF8: Final = "utf-8"
GB18030: Final = "gb18030"


def _decode(data: bytes, path: Path) -> tuple[str, str]:
    """``(text, encoding)``: UTF-8 (a BOM dropped), else GB18030; CsvError if neither."""
    try:
        return data.decode("utf-8-sig"), UTF8
    except UnicodeDecodeError as exc:
        first = exc
    try:
        return data.decode(GB18030), GB18030
    except UnicodeDecodeError:
        pass
    line = data.count(b"\n", 0, first.start) + 1
    raise CsvError(
        [
            f"{path}: line {line}: byte 0x{data[first.start]:02x} is text in neither UTF-8 nor "
            "GB18030 (Chinese Excel's CSV): save it as CSV UTF-8 (Excel: Save As, "
            '"CSV UTF-8 (Comma delimited)")'
        ]
    )


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CsvError([f"cannot read {path}: {exc.strerror or exc}"]) from None


def csv_encoding(path: Path) -> str | None:
    """The encoding :func:`read_csv` reads ``path`` in; None if it cannot read it (its
    error says why)."""
    try:
        return _decode(_read_bytes(path), path)[1]
    except CsvError:
        return None


def read_csv(path: Path, variables: list[str]) -> list[Record]:
    """:func:`parse_csv` of a file; :class:`CsvError` (with the path) if it cannot be read."""
    text, _ = _decode(_read_bytes(path), path)
    try:
        return parse_csv(text, variables)
    except CsvError as exc:
        raise CsvError([f"{path}: {p}" for p in exc.problems]) from None

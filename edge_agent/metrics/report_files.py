"""Reports in the state directory: JSON, CSV for Excel and a printable HTML page.

``state_dir/reports/daily/2026-12-04.{json,csv,html}`` and
``state_dir/reports/shift/2026-12-04-night.{json,csv,html}``: one name per report, so a
report made again (a window closed again after a restart) replaces its files instead
of adding a second copy. Each file is written to a temporary file, synced and renamed
over the old one (as :mod:`edge_agent.metrics.store` does): a power cut leaves the old
report or the new one, never a torn file. The JSON is written last and is what "the
report kept before" means: a report whose content equals it keeps the earlier
``generated_at`` (its files come out byte for byte the same) and is not sent again.

Reports older than ``keep_days`` before the newest one written are deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from edge_agent.config import PlantConfig
from edge_agent.episodes import Episode
from edge_agent.metrics.report_render import render_csv, render_html
from edge_agent.metrics.reports import (
    DAILY,
    SHIFTLY,
    Document,
    Reporter,
    content,
    report_stem,
)
from edge_agent.metrics.store import atomic_write

log = structlog.get_logger("edge_agent.metrics")

REPORTS_DIR: Final = "reports"
#: The kinds of report, each a directory under ``reports/``.
KINDS: Final = (DAILY, SHIFTLY)
SUFFIXES: Final = (".html", ".csv", ".json")
#: A report file's name: its day, the shift's name for a shift report, the suffix.
_FILE_NAME: Final = re.compile(
    r"(?P<day>\d{4}-\d{2}-\d{2})(?:-(?P<shift>[A-Za-z0-9][A-Za-z0-9_.\-]*))?"
    r"(?P<suffix>\.html|\.csv|\.json)\Z"
)


def reports_root(state_dir: Path) -> Path:
    return state_dir / REPORTS_DIR


@dataclass(frozen=True)
class ReportEntry:
    """One report kept in the state directory (whichever of its files exist)."""

    kind: str
    day: str
    shift: str | None
    #: Paths relative to the reports root (``daily/2026-12-04.html``), by suffix.
    files: dict[str, str]

    @property
    def stem(self) -> str:
        return self.day + (f"-{self.shift}" if self.shift else "")


def list_reports(root: Path) -> list[ReportEntry]:
    """Every report kept under ``root``, newest day first (daily before shift reports)."""
    entries: dict[tuple[str, str], ReportEntry] = {}
    for kind in KINDS:
        directory = root / kind
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            found = _FILE_NAME.match(name)
            if found is None or not (directory / name).is_file():
                continue
            stem = name[: -len(found["suffix"])]
            entry = entries.setdefault(
                (kind, stem), ReportEntry(kind, found["day"], found["shift"], {})
            )
            entry.files[found["suffix"]] = f"{kind}/{name}"
    return sorted(entries.values(), key=lambda e: (e.day, e.kind == DAILY, e.stem), reverse=True)


def find_report(root: Path, day: str | None, shift: str | None) -> ReportEntry | None:
    """The daily (or, with ``shift``, that shift's) report of ``day``; the newest without."""
    kind = SHIFTLY if shift else DAILY
    for entry in list_reports(root):
        if entry.kind != kind or (day is not None and entry.day != day):
            continue
        if shift is None or entry.shift == shift:
            return entry
    return None


class ReportFiles:
    """Keeps reports under ``root`` (``state_dir/reports``); see the module docstring."""

    def __init__(self, root: Path, keep_days: int) -> None:
        self.root = root
        self.keep_days = keep_days
        self._failing = Episode()

    def path(self, document: Document, suffix: str) -> Path:
        kind: str = document["report"]
        return self.root / kind / (report_stem(document) + suffix)

    def kept(self, document: Document) -> Document | None:
        """The copy of this report kept before, if it can be read."""
        try:
            data = json.loads(self.path(document, ".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write(self, document: Document) -> tuple[Document, bool]:
        """Write ``document``'s files; return it as written and whether it is new content.

        A disk that refuses the files costs the files, never the report: it is still
        sent (True), and the failure is logged once until writing works again.
        """
        before = self.kept(document)
        changed = before is None or content(before) != content(document)
        if not changed and before is not None:
            document = {**document, "generated_at": before.get("generated_at")}
        try:
            (self.root / document["report"]).mkdir(parents=True, exist_ok=True)
            atomic_write(self.path(document, ".csv"), render_csv(document))
            atomic_write(self.path(document, ".html"), render_html(document))
            text = json.dumps(document, ensure_ascii=False, indent=1, allow_nan=False)
            atomic_write(self.path(document, ".json"), (text + "\n").encode("utf-8"))
            self.prune(dt.date.fromisoformat(document["day"]))
        except (OSError, ValueError) as exc:
            if self._failing.begin():
                log.error(
                    "cannot write the energy report files; the report is still published",
                    path=str(self.root),
                    error=str(exc),
                )
            return document, True
        if self._failing.end():
            log.info("energy report files written again", path=str(self.root))
        return document, changed

    def prune(self, newest: dt.date) -> list[Path]:
        """Delete reports of days more than ``keep_days`` before ``newest`` (and
        temporary files a crash left behind); return what was deleted."""
        cutoff = (newest - dt.timedelta(days=self.keep_days)).isoformat()
        deleted: list[Path] = []
        for kind in KINDS:
            directory = self.root / kind
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(directory):
                    found = _FILE_NAME.match(name)
                    # Writes are synchronous: a .tmp here is a crash's leftover.
                    stale = name.endswith(".tmp")
                    if (found is not None and found["day"] < cutoff) or stale:
                        with contextlib.suppress(FileNotFoundError):
                            (directory / name).unlink()
                            deleted.append(directory / name)
        return deleted


def build_reporter(
    plant: PlantConfig,
    *,
    clock: Callable[[], float] = time.time,
) -> Reporter | None:
    """The plant's reporter writing to ``state_dir/reports``; None when no report is on."""
    metrics = plant.metrics
    if metrics is None:
        return None
    daily, shift = metrics.reports.on(metrics.windows)
    if not (daily or shift):
        return None
    return Reporter(
        plant.plant.name,
        plant.plant.timezone,
        daily=daily,
        shift=shift,
        min_coverage=metrics.min_coverage,
        site=plant.plant.site,
        files=ReportFiles(reports_root(plant.state_dir), metrics.reports.keep_days),
        clock=clock,
    )

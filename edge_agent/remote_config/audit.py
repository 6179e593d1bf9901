"""The audit trail of remote configuration: every document taken, and what became of it.

``<state_dir>/audit/config.jsonl``, beside the write commands' ``audit.jsonl`` and with
the same files, rotation and guarantees (:class:`edge_agent.writes.audit.AuditLog`: one
fsynced JSON line per record, 0600 in a 0700 directory, no secret in any record), rotated
by the plant's ``commands.audit`` settings.

Two kinds of record:

- ``accepted``: a signed document passed every check and is about to be applied. It is
  on disk before anything changes; when it cannot be written, the document is refused
  ("audit"): a change of the plant's configuration is never made unaudited.
- one per retained report (``applied``, ``refused`` after the signature was verified,
  ``rolled_back``, ...): the report published on ``config/state``, as it is. A report
  that cannot be written is logged as an error (the change it reports has happened or
  has not; refusing it would undo nothing). Refusals of messages whose signature was
  never checked are not recorded: anyone with access to the broker can send those, and
  a flood of them must not rotate the real records out; they are counted and logged.

Read with ``edge-agent config audit -c PLANT``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final, Protocol

import structlog

from edge_agent.remote_config.document import ConfigDocument
from edge_agent.writes.audit import AuditLog, audit_directory

log = structlog.get_logger("edge_agent.remote_config")

#: The live file's name in ``<state_dir>/audit``.
FILE_NAME: Final = "config.jsonl"


def config_audit_log(state_dir: Path, max_bytes: int, keep: int) -> AuditLog:
    """The remote configuration's audit log of a plant."""
    return AuditLog(audit_directory(state_dir), max_bytes, keep, name=FILE_NAME)


class ConfigAudit:
    """Appends the records; counts the reports it could not write."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        #: Reports that could not be written to the audit log.
        self.failures = 0

    @property
    def path(self) -> Path:
        return self._audit.path

    def accepted(self, document: ConfigDocument) -> None:
        """The record before a document is applied. Raises OSError when it is not on
        disk: the caller must then not apply the document."""
        self._audit.append(
            {
                "kind": "config",
                "event": "accepted",
                "plant": document.plant,
                "version": document.version,
                "sha256": document.sha256,
                "document": document.digest,
                "key_id": document.key_id,
                "issued_at": document.issued_at,
            }
        )

    def reported(self, payload: bytes) -> None:
        """The record of one report (the ``config/state`` payload)."""
        try:
            report = json.loads(payload)
            record = {"kind": "config", "event": report.pop("status", "report"), **report}
            self._audit.append(record)
        except (OSError, ValueError) as exc:
            self.failures += 1
            log.error(
                "remote config report not written to the audit log",
                file=str(self._audit.path),
                error=str(exc),
                failures=self.failures,
            )

    def close(self) -> None:
        self._audit.close()


class Report(Protocol):
    """Publish a report on ``config/state``: retained (what became of a verified
    document, what runs) or not (a refusal before the signature was checked: anyone may
    send one, and it must not replace the retained report of what runs)."""

    def __call__(self, payload: bytes, retain: bool = True) -> None: ...


def audited(report: Report, audit: ConfigAudit | None) -> Report:
    """``report`` that writes every report to ``audit`` first."""
    if audit is None:
        return report

    def report_and_audit(payload: bytes, retain: bool = True) -> None:
        if retain:  # not retained: a refusal before the signature check (module docstring)
            audit.reported(payload)
        report(payload, retain)

    return report_and_audit

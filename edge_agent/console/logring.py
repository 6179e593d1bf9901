"""The console's recent warnings and errors: a bounded ring fed by the logging handler chain.

A second handler on the root logger, beside the one that writes the log: it keeps the
last :data:`KEPT` records at warning and above, rendered by the same structlog chain
(secret keys masked, every configured secret replaced in the text), so the config
page shows what went wrong lately without a shell on the gateway.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Any

import structlog

from edge_agent.logs import shared_processors
from edge_agent.redaction import redact

#: Records kept; older ones fall off.
KEPT = 200


class LogRing(logging.Handler):
    """Keeps the last warnings and errors as small dictionaries."""

    def __init__(self, kept: int = KEPT) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, str]] = deque(maxlen=kept)
        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared_processors(),
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(default=str),
                ],
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event: dict[str, Any] = json.loads(redact(self.format(record)))
        except Exception:  # noqa: BLE001 - a record we cannot render is not worth an error
            return
        time = str(event.pop("timestamp", ""))
        level = str(event.pop("level", record.levelname.lower()))
        logger = str(event.pop("logger", record.name))
        text = str(event.pop("event", ""))
        exception = event.pop("exception", None)
        fields = " ".join(f"{key}={value}" for key, value in event.items())
        if exception:
            fields = f"{fields}\n{exception}".strip()
        self.records.append(
            {"time": time, "level": level, "logger": logger, "event": text, "fields": fields}
        )

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)

"""Logging: JSON lines off a terminal (journald keeps them), colour on a terminal.

structlog renders through the standard library's ``logging``, so one handler formats
both the agent's events and what libraries (pymodbus, asyncua, ...) log, and a level
can be set per component: by logger name, as printed in every line's ``logger``
field (``edge_agent.scheduler``, ``edge_agent.sink.mqtt``, ``pymodbus``...).

Secrets are never written. Two layers, because a secret can end up anywhere (an
exception message, a URL, a repr):

* keys that name a secret (``password``, ``token``, ``secret``...) are masked in every
  event before rendering;
* every secret value of the config (see :mod:`edge_agent.redaction`) is replaced in
  the rendered line, tracebacks included. Tracebacks never show local variables.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from edge_agent.redaction import REDACTED, is_secret_key, redact, register_secrets, secret_values

if TYPE_CHECKING:
    from edge_agent.config import PlantConfig

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: Loggers whose level is the configured ``level``; every other logger (libraries)
#: shows warnings and errors unless a component level says otherwise.
OWN_LOGGERS = ("edge_agent", "drivers", "simulators")

_HANDLER_MARK = "_edge_agent_handler"
#: Loggers given a component level by the last configure_logging(), reset by the next.
_component_loggers: set[str] = set()


def _mask_secret_keys(_logger: Any, _method: str, event: Any) -> Any:
    for key, value in event.items():
        if value and isinstance(value, str) and is_secret_key(key):
            event[key] = REDACTED
    return event


def _redact_rendered(_logger: Any, _method: str, rendered: Any) -> Any:
    return redact(rendered) if isinstance(rendered, str) else rendered


def shared_processors() -> list[structlog.types.Processor]:
    """What every rendered line carries: level, logger, UTC time; secret keys masked."""
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secret_keys,
    ]


def configure_logging(
    level: str = "info",
    *,
    json: bool | None = None,
    components: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging to ``stream``, with per-logger levels.

    ``stream`` defaults to stderr; ``edge-agent run`` passes stdout (journald keeps it).

    ``json=None`` picks JSON unless the stream is a terminal. ``components`` maps
    logger names to levels; a name covers its children (``edge_agent.sink`` covers
    ``edge_agent.sink.mqtt``). Safe to call again (a reload): it replaces its
    own handler and levels, and leaves other handlers (pytest's) alone.
    """
    out = sys.stderr if stream is None else stream
    terminal = out.isatty()
    use_json = not terminal if json is None else json
    numeric = _LEVELS.get(level, logging.INFO)
    shared = shared_processors()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        # Plain tracebacks: the default (rich) one prints local variables, credentials too.
        else structlog.dev.ConsoleRenderer(
            colors=terminal, exception_formatter=structlog.dev.plain_traceback
        )
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # The console renderer formats exceptions itself (and warns if this runs first).
            *([structlog.processors.format_exc_info] if use_json else []),
            renderer,
            _redact_rendered,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(numeric)
    for name in _component_loggers - set(OWN_LOGGERS):
        logging.getLogger(name).setLevel(logging.NOTSET)
    _component_loggers.clear()
    for name, component_level in (components or {}).items():
        logging.getLogger(name).setLevel(_LEVELS.get(component_level, logging.INFO))
        _component_loggers.add(name)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def configure_from_config(
    plant: PlantConfig, level_override: str | None = None, *, stream: TextIO | None = None
) -> None:
    """Logging as the plant file says (``--log-level`` wins), secrets registered first."""
    too_short = register_secrets(secret_values(plant))
    settings = plant.logging
    configure_logging(
        level_override or settings.level,
        json={"auto": None, "json": True, "console": False}[settings.format],
        components=settings.components,
        stream=stream,
    )
    if too_short:
        structlog.get_logger("edge_agent.service").warning(
            "secrets shorter than 4 characters cannot be redacted from free text; "
            "use longer passwords and tokens",
            count=too_short,
        )

"""Log output: JSON lines with the logger name, levels per component, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from edge_agent.config.loader import parse_config
from edge_agent.logs import configure_from_config, configure_logging
from edge_agent.redaction import forget_secrets, redact, register_secrets, secret_values


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name in ("edge_agent", "edge_agent.sink", "drivers", "simulators", "pymodbus"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()
    forget_secrets()


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_logger_level_and_time() -> None:
    out = io.StringIO()
    configure_logging("info", json=True, stream=out)
    structlog.get_logger("edge_agent.scheduler").info("device online", device="press-1")
    [line] = _lines(out)
    assert line["event"] == "device online"
    assert line["logger"] == "edge_agent.scheduler"
    assert line["level"] == "info"
    assert line["device"] == "press-1"
    assert str(line["timestamp"]).endswith("Z")


def test_levels_per_component_and_libraries_at_warning() -> None:
    out = io.StringIO()
    configure_logging(
        "warning",
        json=True,
        stream=out,
        components={"edge_agent.sink": "debug", "pymodbus": "error"},
    )
    structlog.get_logger("edge_agent.scheduler").info("hidden: scheduler is at warning")
    structlog.get_logger("edge_agent.sink.mqtt").debug("shown: child of edge_agent.sink")
    logging.getLogger("pymodbus.logging").warning("hidden: pymodbus is at error")
    logging.getLogger("pymodbus.logging").error("shown: %s", "library error")
    logging.getLogger("asyncua").info("hidden: libraries default to warning")
    events = [(line["logger"], line["event"]) for line in _lines(out)]
    assert events == [
        ("edge_agent.sink.mqtt", "shown: child of edge_agent.sink"),
        ("pymodbus.logging", "shown: library error"),
    ]
    # Reconfiguring (a reload) drops component levels that are no longer configured.
    configure_logging("warning", json=True, stream=out)
    assert not structlog.get_logger("edge_agent.sink").is_enabled_for(logging.DEBUG)


PLANT = """\
plant: {name: line-1}
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 10.0.0.10}
    poll_groups: [{name: fast, interval: 1s, tags: [{name: v, address: 0}]}]
sinks:
  - {name: broker, type: mqtt, host: 10.0.0.5, username: agent, password: "${MQTT_PASSWORD}"}
logging: {format: json, level: debug}
"""


def test_secrets_of_the_config_never_reach_the_output() -> None:
    secret = 'pa"ss\\word-7781'
    config = parse_config(PLANT, env={"MQTT_PASSWORD": secret})
    assert secret_values(config) == {secret}
    configure_from_config(config)  # registers the config's secrets (and logs to stderr)
    out = io.StringIO()
    configure_logging("debug", json=True, stream=out)
    log = structlog.get_logger("edge_agent.sink.mqtt")
    log.info("connecting", password=secret, note=f"with {secret} inside")
    log.info("api", token="abcdefgh", detail={"nested": secret})
    try:
        raise ConnectionError(f"broker said no to {secret}")
    except ConnectionError:
        log.exception("failed")
    logging.getLogger("paho").error("library echoed %s", secret)
    text = out.getvalue()
    assert secret not in text
    assert json.dumps(secret)[1:-1] not in text  # not even JSON-escaped
    assert "abcdefgh" not in text  # masked by its key, though never registered
    lines = _lines(out)
    assert lines[0]["password"] == "***"
    assert lines[0]["note"] == "with *** inside"
    assert "broker said no to ***" in str(lines[2]["exception"])
    assert lines[3]["event"] == "library echoed ***"


def test_short_secrets_are_not_scrubbed_from_free_text() -> None:
    assert register_secrets(["abc", "", "long-enough"]) == 1
    assert redact("abc long-enough") == "abc ***"


def test_console_tracebacks_show_no_local_variables() -> None:
    out = io.StringIO()
    configure_logging("info", json=False, stream=out)

    def connect(password: str) -> None:
        raise RuntimeError("refused")

    try:
        connect("hunter" + "2" * 7)  # a value that is not in the source text, not registered
    except RuntimeError:
        structlog.get_logger("edge_agent.sink").exception("failed")
    text = out.getvalue()
    assert "RuntimeError: refused" in text
    assert "hunter2222222" not in text

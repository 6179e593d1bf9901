"""Where the commissioning tools talk to: ``tcp://HOST:PORT`` or ``rtu:///dev/ttyUSB0?baud=9600``.

Pure: the text a person types on the command line, turned into the same connection
settings a plant file holds (:class:`~edge_agent.config.ModbusTcp` /
:class:`~edge_agent.config.ModbusRtu`), so ``read`` and ``probe`` open the very channel
the agent would. Mistakes are :class:`TargetError` with a sentence that says what to
write instead.
"""

from __future__ import annotations

import urllib.parse

from pydantic import ValidationError

from edge_agent.config import ModbusRtu, ModbusTcp

#: Query keys of an rtu:// target and the ModbusRtu field each one sets.
RTU_OPTIONS: dict[str, str] = {
    "baud": "baudrate",
    "baudrate": "baudrate",
    "parity": "parity",
    "stopbits": "stopbits",
    "bytesize": "bytesize",
    "databits": "bytesize",
}

EXAMPLES = "tcp://192.168.1.10:502 or rtu:///dev/ttyUSB0?baud=9600&parity=E"


class TargetError(ValueError):
    """A target the tools cannot use; the message says how to write it."""


def parse_target(text: str) -> ModbusTcp | ModbusRtu:
    """``tcp://HOST[:PORT]`` (port 502 by default) or ``rtu://DEVICE[?baud=..&parity=..]``
    (19200 baud, parity E, 1 stop bit, 8 data bits by default: the Modbus RTU defaults)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise TargetError(f"{text!r}: write the device as {EXAMPLES}")
    scheme = scheme.lower()
    if scheme == "tcp":
        return _tcp(text, rest)
    if scheme == "rtu":
        return _rtu(text, rest)
    raise TargetError(f"{text!r}: unknown scheme {scheme!r}; use {EXAMPLES}")


def _tcp(text: str, rest: str) -> ModbusTcp:
    parts = urllib.parse.urlsplit("tcp://" + rest)
    if parts.path not in ("", "/") or parts.query:
        raise TargetError(f"{text!r}: a TCP target is only tcp://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        raise TargetError(f"{text!r}: the port must be a number from 1 to 65535") from None
    host = parts.hostname
    if not host:
        raise TargetError(f"{text!r}: no host; write e.g. tcp://192.168.1.10:502")
    try:
        return ModbusTcp(transport="tcp", host=host, port=502 if port is None else port)
    except ValidationError:
        raise TargetError(f"{text!r}: the port must be a number from 1 to 65535") from None


def _rtu(text: str, rest: str) -> ModbusRtu:
    path, _, query = rest.partition("?")
    if not path.startswith("/"):
        raise TargetError(
            f"{text!r}: give the serial port's full path after rtu://, e.g. rtu:///dev/ttyUSB0"
        )
    settings: dict[str, object] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        field = RTU_OPTIONS.get(key.lower())
        if field is None:
            known = ", ".join(sorted({"baud", "parity", "stopbits", "bytesize"}))
            raise TargetError(f"{text!r}: unknown setting {key!r}; known: {known}")
        if field in settings:
            raise TargetError(f"{text!r}: {key!r} is given twice")
        if field == "parity":
            settings[field] = value.upper()
        elif value.isdigit():
            settings[field] = int(value)
        else:
            raise TargetError(f"{text!r}: {key}={value!r} is not a number")
    try:
        return ModbusRtu(transport="rtu", serial_port=path, **settings)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(_rtu_problem(error) for error in exc.errors())
        raise TargetError(f"{text!r}: {problems}") from None


def _rtu_problem(error: object) -> str:
    assert isinstance(error, dict)
    field = str(error["loc"][0]) if error.get("loc") else "?"
    hints = {
        "baudrate": "baud must be from 300 to 4000000 (e.g. 9600, 19200)",
        "parity": "parity must be N (none), E (even) or O (odd)",
        "stopbits": "stopbits must be 1 or 2",
        "bytesize": "bytesize must be 7 or 8",
    }
    return hints.get(field, f"{field}: {error.get('msg', 'invalid')}")


def describe_target(connection: ModbusTcp | ModbusRtu) -> str:
    """The target as the tools print it (with every serial setting spelled out)."""
    if isinstance(connection, ModbusTcp):
        return f"tcp://{connection.host}:{connection.port}"
    return (
        f"rtu://{connection.serial_port} {connection.baudrate} baud "
        f"{connection.bytesize}{connection.parity}{connection.stopbits}"
    )


def parse_range(text: str, what: str) -> tuple[float, float]:
    """``LOW..HIGH`` (e.g. ``220..240``, ``0.9..1.0``, ``-5..5``) as two numbers, low first."""
    low, sep, high = text.partition("..")
    if not sep:
        raise TargetError(f"{what} {text!r}: write a range as LOW..HIGH, e.g. 220..240")
    try:
        a, b = float(low), float(high)
    except ValueError:
        raise TargetError(f"{what} {text!r}: LOW and HIGH must be numbers, e.g. 220..240") from None
    if a != a or b != b:
        raise TargetError(f"{what} {text!r}: LOW and HIGH must be numbers")
    return (a, b) if a <= b else (b, a)


def parse_int_range(text: str, what: str, lowest: int, highest: int) -> tuple[int, int]:
    """``A..B`` or a single ``A`` as whole numbers within ``lowest..highest``."""
    low, sep, high = text.partition("..")
    try:
        a = int(low)
        b = int(high) if sep else a
    except ValueError:
        raise TargetError(
            f"{what} {text!r}: write whole numbers as A..B, e.g. {lowest}..{highest}"
        ) from None
    a, b = min(a, b), max(a, b)
    if a < lowest or b > highest:
        raise TargetError(f"{what} {text!r}: must lie within {lowest}..{highest}")
    return a, b

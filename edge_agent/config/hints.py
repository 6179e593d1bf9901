"""Hints for the mistakes integrators actually make in a plant file.

Each turns a correct but unhelpful message into one that says what to write:

- an unquoted ``off``/``on``/``yes``/``no``, which YAML 1.1 reads as a boolean, where a
  string is expected (an enum label, a description, a name): write ``"off"`` in quotes;
- a value type in another tool's spelling (``float``, ``REAL``, ``dword``): did you
  mean ``float32``?
- a byte order written as ``big`` or ``little`` (lower case ``abcd`` is accepted);
- a Modbus address that looks like a register number (``40001``): the 0-based offset
  and table it probably means. Six digits (``400001``) cannot be an address: an
  error. Five digits (``30001``-``49999``) can be a real address (SunSpec maps start at
  40000), so they are a warning, once per device.

Kept apart from the loader so that each table stays small and testable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_agent.config.checks.common import Finding, Loc

#: What YAML 1.1 (PyYAML) reads as a boolean besides true/false.
BOOLEAN_WORDS = frozenset(
    word
    for base in ("yes", "no", "on", "off", "y", "n")
    for word in (base, base.capitalize(), base.upper())
)

#: Value types as other tools and manuals spell them (lower case) -> ours. IEC 61131-3
#: names (INT, DINT, REAL, WORD, DWORD), C and Modbus Poll names (short, long, double).
TYPE_ALIASES: Mapping[str, str] = {
    "float": "float32",
    "real": "float32",
    "single": "float32",
    "f32": "float32",
    "double": "float64",
    "lreal": "float64",
    "f64": "float64",
    "int": "int16",
    "short": "int16",
    "i16": "int16",
    "uint": "uint16",
    "ushort": "uint16",
    "word": "uint16",
    "u16": "uint16",
    "dint": "int32",
    "long": "int32",
    "i32": "int32",
    "udint": "uint32",
    "dword": "uint32",
    "ulong": "uint32",
    "u32": "uint32",
    "lint": "int64",
    "i64": "int64",
    "ulint": "uint64",
    "lword": "uint64",
    "u64": "uint64",
    "str": "string",
    "text": "string",
    "ascii": "string",
    "boolean": "bool",
    "bit": "bool",
}

#: Byte orders as people say them -> what to write instead (None: ambiguous).
BYTE_ORDER_WORDS: Mapping[str, str | None] = {
    "big": "ABCD",
    "big-endian": "ABCD",
    "big_endian": "ABCD",
    "bigendian": "ABCD",
    "be": "ABCD",
    "little": None,
    "little-endian": None,
    "little_endian": None,
    "littleendian": None,
    "le": None,
    "word swap": "CDAB",
    "word_swap": "CDAB",
    "wordswap": "CDAB",
    "byte swap": "BADC",
    "byte_swap": "BADC",
    "byteswap": "BADC",
}

#: Register-number prefixes of the Modbus convention: 3xxxx input, 4xxxx holding.
_TABLE_OF_DIGIT = {3: "input", 4: "holding"}


def quote_hint(written: str) -> str:
    """``off`` read as a boolean where a string was meant."""
    value = "true" if written.lower() in ("yes", "on", "y") else "false"
    return (
        f"{written} was read as the boolean {value} (YAML reads unquoted yes/no/on/off "
        f'that way): write "{written}" in quotes'
    )


def type_hint(written: Any, allowed: str) -> str | None:
    """``did you mean float32?`` for a value type spelled as another tool spells it."""
    if not isinstance(written, str):
        return None
    lower = written.strip().lower()
    choices = [c.strip() for c in allowed.split(",")]
    if lower in choices:  # FLOAT32, Float32
        return f"did you mean {lower}?"
    target = TYPE_ALIASES.get(lower)
    if target is not None and target in choices:
        return f"did you mean {target}?"
    return None


def byte_order_hint(written: Any) -> str | None:
    if not isinstance(written, str) or written.strip().lower() not in BYTE_ORDER_WORDS:
        return None
    target = BYTE_ORDER_WORDS[written.strip().lower()]
    if target is None:
        return (
            "'little' is ambiguous here: DCBA reverses all four bytes, CDAB (the usual "
            "'little-endian' of meters) swaps only the two registers; write the one the "
            "manual shows"
        )
    return f"did you mean {target}?"


def register_number(address: int) -> tuple[str, int] | None:
    """(table, 0-based address) a register number like 40001 or 400001 stands for."""
    if 30001 <= address <= 39999 or 40001 <= address <= 49999:
        return _TABLE_OF_DIGIT[address // 10000], address % 10000 - 1
    if 300001 <= address <= 365536 or 400001 <= address <= 465536:
        return _TABLE_OF_DIGIT[address // 100000], address % 100000 - 1
    return None


def address_hint(address: int, table: Any) -> str | None:
    """``40001 looks like a register number: holding register 1 is address 0; write
    table: holding, address: 0``."""
    found = register_number(address)
    if found is None:
        return None
    meant, offset = found
    table = table or "holding"  # the default table
    write = f"address: {offset}" if table == meant else f"table: {meant}, address: {offset}"
    return (
        f"{address} looks like a register number: {meant} register {offset + 1} is "
        f"address {offset}; write {write}"
    )


def address_warnings(data: Mapping[str, Any]) -> list[Finding]:
    """Five-digit addresses that look like register numbers, once per Modbus device
    (at its first such tag, with how many more there are)."""
    found: list[Finding] = []
    devices = data.get("devices")
    for d, device in enumerate(devices if isinstance(devices, list) else []):
        if not isinstance(device, dict) or device.get("driver", "modbus") != "modbus":
            continue
        suspects: list[tuple[Loc, int, Any]] = []
        groups = device.get("poll_groups")
        for g, group in enumerate(groups if isinstance(groups, list) else []):
            tags = group.get("tags") if isinstance(group, dict) else None
            for t, tag in enumerate(tags if isinstance(tags, list) else []):
                address = tag.get("address") if isinstance(tag, dict) else None
                if type(address) is int and address <= 65535 and register_number(address):
                    path: Loc = ("devices", d, "poll_groups", g, "tags", t, "address")
                    suspects.append((path, address, tag.get("table", "holding")))
        if not suspects:
            continue
        path, address, table = suspects[0]
        message = address_hint(address, table) or ""
        more = len(suspects) - 1
        if more:
            tags = f"{more} more tags of this device look" if more > 1 else "1 more tag looks"
            message += f" ({tags} the same)"
        message += "; if the manual gives 0-based protocol addresses (SunSpec starts at 40000), "
        message += "ignore this"
        found.append((path, message))
    return found

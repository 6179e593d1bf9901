"""What ``read`` and ``probe`` found, as data: one source for the terminal and the console.

Pure: no I/O. :mod:`drivers.modbus.tools` asks the device and builds a
:class:`ReadResult` or :class:`ProbeResult` from the answer; the command line prints
:func:`render_read` / :func:`render_probe` (those lines are the tools' output, byte for
byte), and the web console sends :meth:`ReadResult.document` /
:meth:`ProbeResult.document` (JSON, with the same lines in ``lines``), so the two can
never show different values for the same registers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from drivers.modbus.answer import Answer, Outcome, explain, function_of, hex_registers
from drivers.modbus.decodings import (
    Decoding,
    decode,
    decode_string,
    format_value,
    layouts,
    orders_for,
    render_table,
)
from drivers.modbus.ranking import Candidate, label, one_in, rank, tag_yaml, verdict
from drivers.modbus.ranking import explain as explain_ranking
from edge_agent.config import ByteOrder, ModbusTable
from edge_agent.model import Quality, Value

BIT_TABLES = ("coil", "discrete_input")


@dataclass(frozen=True, slots=True)
class Asked:
    """Whom a tool asked and how: the words of its first line and of its explanations."""

    #: ``tcp://127.0.0.1:502 unit 1`` (the target as the tools print it).
    where: str
    unit: int
    serial: bool
    timeout: float
    table: ModbusTable
    address: int
    #: Registers (or bits) read.
    count: int

    @property
    def span(self) -> str:
        last = self.address + self.count - 1
        return f"{self.address}" if self.count == 1 else f"{self.address}-{last}"


def _explanation(asked: Asked, answer: Answer) -> list[str]:
    return explain(
        answer,
        table=asked.table,
        address=asked.address,
        count=asked.count,
        unit=asked.unit,
        serial=asked.serial,
        timeout=asked.timeout,
    )


def _failure(asked: Asked, answer: Answer, lines: list[str]) -> dict[str, Any]:
    """A failed request as the console shows it: what happened, and what to try."""
    words = _explanation(asked, answer)
    said = [w for w in words if not w.startswith("hint: ")]
    hints = [w.removeprefix("hint: ") for w in words if w.startswith("hint: ")]
    return {
        "ok": False,
        "device": asked.where,
        "outcome": answer.outcome.value,
        "code": answer.code if answer.outcome is Outcome.EXCEPTION else None,
        "error": " ".join(said) or answer.summary(),
        "hint": " ".join(hints),
        "elapsed_ms": _ms(answer.elapsed),
        "lines": lines,
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _json_value(value: Value) -> Any:
    """A value JSON can carry (no NaN or infinity: those are in ``text``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _decoding(d: Decoding) -> dict[str, Any]:
    good = d.quality is Quality.GOOD
    return {
        "type": d.type,
        "byte_order": d.byte_order,
        "scale": d.scale,
        "value": _json_value(d.value) if good else None,
        "text": format_value(d),
        "good": good,
    }


# ------------------------------------------------------------------------ read


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One ``read``: the answer, and the value as every type and byte order that fits
    (or as the one type asked for)."""

    asked: Asked
    answer: Answer
    #: The type asked for (None: every type that fits), its byte order and scale.
    type: str | None
    byte_order: ByteOrder
    scale: float
    #: Every numeric decoding that fits, or the one of ``type``.
    decodings: tuple[Decoding, ...]
    #: The block as readable text (both character orders; the one asked for with
    #: ``type`` string).
    texts: tuple[Decoding, ...]

    @property
    def ok(self) -> bool:
        return self.answer.outcome is Outcome.DATA

    @classmethod
    def of(
        cls,
        asked: Asked,
        answer: Answer,
        type_: str | None = None,
        byte_order: ByteOrder = "ABCD",
        scale: float = 1.0,
    ) -> ReadResult:
        """Decode ``answer`` (with the agent's own decoder) as the read asked."""
        decodings: list[Decoding] = []
        texts: list[Decoding] = []
        table, address, data = asked.table, asked.address, answer.data
        if answer.outcome is Outcome.DATA and table not in BIT_TABLES:
            if type_ == "string":
                texts = decode_string(table, address, data)
                texts = [t for t in texts if t.byte_order == byte_order]
            elif type_ is not None:
                effective = (
                    byte_order
                    if byte_order in orders_for(type_)
                    else {"CDAB": "ABCD", "DCBA": "BADC"}[byte_order]
                )
                decodings = decode(table, address, data, [(0, type_, effective)], (scale,))  # type: ignore[list-item]
            else:
                decodings = decode(table, address, data, layouts(asked.count))
                texts = decode_string(table, address, data)
        return cls(asked, answer, type_, byte_order, scale, tuple(decodings), tuple(texts))

    def document(self) -> dict[str, Any]:
        """The result for the console (JSON-ready); ``lines`` is what the terminal shows."""
        lines = render_read(self)
        if not self.ok:
            return _failure(self.asked, self.answer, lines)
        bits = self.asked.table in BIT_TABLES
        return {
            "ok": True,
            "device": self.asked.where,
            "table": self.asked.table,
            "address": self.asked.address,
            "count": self.asked.count,
            "function": function_of(self.asked.table),
            "registers": [] if bits else [f"0x{v:04X}" for v in self.answer.data],
            "bits": [bool(v) for v in self.answer.data] if bits else [],
            "decodings": [_decoding(d) for d in self.decodings],
            "texts": [{"byte_order": t.byte_order, "value": t.value} for t in self.texts],
            "elapsed_ms": _ms(self.answer.elapsed),
            "lines": lines,
        }


def render_read(result: ReadResult) -> list[str]:
    """The lines ``edge-agent read`` prints."""
    asked, answer = result.asked, result.answer
    table, address = asked.table, asked.address
    lines = [
        f"{asked.where}, {table} {asked.span} (function {function_of(table)}): {answer.summary()}"
    ]
    if not result.ok:
        return lines + _explanation(asked, answer)
    if table in BIT_TABLES:
        lines += [
            f"  {address + i:>5}  {'1 (on)' if bit else '0 (off)'}"
            for i, bit in enumerate(answer.data)
        ]
        return lines
    lines += hex_registers(address, answer.data)
    if result.type == "string":
        texts = result.texts
        shown = repr(texts[0].value) if texts else "not readable as text"
        lines.append(f"string {result.byte_order} at {table} {address}: {shown}")
        return lines
    if result.type is not None:
        (decoding,) = result.decodings
        scaled = "" if result.scale == 1.0 else f" x{result.scale:g}"
        lines.append(
            f"{result.type} {result.byte_order}{scaled} at {table} {address}: "
            f"{format_value(decoding)}"
        )
        return lines
    if result.decodings:
        lines += ["", f"the value at {table} {address}, read as:"]
        lines += ["  " + line for line in render_table(result.decodings)]
        lines.append("  (16-bit types: CDAB reads as ABCD, DCBA as BADC)")
    lines += [f"as text ({t.byte_order}): {t.value!r}" for t in result.texts]
    return lines


# ----------------------------------------------------------------------- probe


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One ``probe --expect``: the decodings of the registers that fall in the range,
    likeliest first, and how much the best of them says."""

    asked: Asked
    answer: Answer
    low: float
    high: float
    #: How many candidates to list.
    top: int
    #: Every decoding tried (type x byte order x scale x starting register).
    tried: tuple[Decoding, ...]
    candidates: tuple[Candidate, ...]

    @property
    def ok(self) -> bool:
        """The device answered (``found`` says whether anything is in range)."""
        return self.answer.outcome is Outcome.DATA

    @property
    def found(self) -> bool:
        return bool(self.candidates)

    @classmethod
    def of(
        cls,
        asked: Asked,
        answer: Answer,
        low: float,
        high: float,
        scales: Sequence[float],
        top: int,
    ) -> ProbeResult:
        """Rank the decodings of ``answer`` (read from every register on) in ``low..high``."""
        if answer.outcome is not Outcome.DATA:
            return cls(asked, answer, low, high, top, (), ())
        registers, count = answer.data, asked.count
        tried = decode(
            asked.table, asked.address, registers, layouts(count, offsets=range(count)), scales
        )
        candidates = rank(tried, registers, low, high)
        return cls(asked, answer, low, high, top, tuple(tried), tuple(candidates))

    def verdict(self) -> str:
        """How much the best candidate says ("" when there is none)."""
        if not self.candidates:
            return ""
        return verdict(self.candidates[0], self.tried, self.low, self.high)

    def document(self) -> dict[str, Any]:
        """The result for the console (JSON-ready); ``lines`` is what the terminal shows."""
        lines = render_probe(self)
        if not self.ok:
            return _failure(self.asked, self.answer, lines)
        asked = self.asked
        best = self.candidates[0] if self.candidates else None
        return {
            "ok": True,
            "found": self.found,
            "device": asked.where,
            "table": asked.table,
            "address": asked.address,
            "count": asked.count,
            "range": [self.low, self.high],
            "registers": [f"0x{v:04X}" for v in self.answer.data],
            "tried": len(self.tried),
            "candidates": [self._candidate(c) for c in self.candidates[: self.top]],
            "more": max(0, len(self.candidates) - self.top),
            "verdict": self.verdict(),
            "explanation": explain_ranking(
                self.candidates, self.low, self.high, asked.address, tried=self.tried
            ),
            "tag": "" if best is None else tag_yaml(best, asked.table, asked.address),
            "elapsed_ms": _ms(self.answer.elapsed),
            "lines": lines,
        }

    def _candidate(self, c: Candidate) -> dict[str, Any]:
        d = c.decoding
        return {
            **_decoding(d),
            "address": self.asked.address + d.offset,
            "label": label(c),
            "chance": c.chance,
            "by_chance": one_in(c.chance),
            "score": round(c.score, 3),
            "notes": list(c.notes),
        }


def render_probe(result: ProbeResult) -> list[str]:
    """The lines ``edge-agent probe --expect`` prints."""
    asked, answer = result.asked, result.answer
    address, low, high, top = asked.address, result.low, result.high, result.top
    lines = [f"{asked.where}, {asked.table} {asked.span}: {answer.summary()}"]
    if not result.ok:
        return lines + _explanation(asked, answer)
    lines += hex_registers(address, answer.data)
    candidates = result.candidates
    lines += ["", f"decodings in {low:g}..{high:g}, likeliest first:"]
    rows = [("address", "type", "order", "scale", "value", "by chance")]
    for c in candidates[:top]:
        d = c.decoding
        rows.append(
            (
                str(address + d.offset),
                d.type,
                d.byte_order,
                f"{d.scale:g}",
                format_value(d),
                one_in(c.chance),
            )
        )
    if len(rows) > 1:
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        if len(candidates) > top:
            lines.append(f"  ... and {len(candidates) - top} more (--top)")
    else:
        lines.append("  none")
    lines.append("")
    lines += explain_ranking(candidates, low, high, address, tried=result.tried)
    if candidates:
        lines += ["", f"as a tag ({label(candidates[0])}):"]
        lines.append(f"  {tag_yaml(candidates[0], asked.table, address)}")
    return lines

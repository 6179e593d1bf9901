"""Sparkplug B datatypes: what each tag becomes, and which protobuf field carries a value.

Three questions, answered once each here (docs/SPARKPLUG.md, "Datatypes"):

* **Declared tags** (:func:`tag_datatype`): a tag's ``value_type`` and what the driver
  makes of it. A scaled (or offset) number is a float whatever the raw type: Double. A
  float32 without scaling is Float (the driver hands over the shortest decimal of that
  float32, so float32 carries it exactly). An enum tag publishes its label (the JSON sink
  sends ``"run"``, and the raw number separately as ``<name>_code``): String. No tag type
  is an array today (OPC UA arrays are split into ``name[0]``, ``name[1]`` ... samples),
  so no array datatype is ever born.
* **Tags typed at run time** (OPC UA before the first value; :func:`value_datatype`):
  bool -> Boolean, int -> Int64 (UInt64 above 2**63 - 1), float -> Double, str -> String.
* **The field** (:data:`FIELD`, :func:`wire_int`): Int8/16/32, UInt8/16 in ``int_value``;
  Int64, UInt32, UInt64 and DateTime in ``long_value``; Float, Double, Boolean, String in
  their own fields. UInt32 goes in ``long_value`` although the specification's table
  lists uint32 for it: the TCK (``Utils.hasValue``) and Eclipse Tahu (Java and the JS
  ``sparkplug-payload`` we decode with) read a UInt32 from ``long_value`` only, so a host
  built on either would see no value at all in ``int_value``. Signed integers travel as
  two's complement in the unsigned field, 32-bit wide for Int8/16/32 (Tahu decodes them
  with ``new Int32Array([int_value])[0]`` and Java's ``(int)`` cast) and 64-bit for
  Int64: -1 is ``int_value`` 4294967295, ``long_value`` 18446744073709551615.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from edge_agent.config.catalog import TagInfo
from edge_agent.model import Value


class DataType(enum.IntEnum):
    """The ``DataType`` enum of sparkplug_b.proto, value for value."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21
    Int8Array = 22
    Int16Array = 23
    Int32Array = 24
    Int64Array = 25
    UInt8Array = 26
    UInt16Array = 27
    UInt32Array = 28
    UInt64Array = 29
    FloatArray = 30
    DoubleArray = 31
    BooleanArray = 32
    StringArray = 33
    DateTimeArray = 34


#: Our declared integer and scalar value types (Modbus spellings) -> Sparkplug datatype,
#: for a tag whose value is not scaled and not an enum label.
DECLARED: Final[Mapping[str, DataType]] = {
    "bool": DataType.Boolean,
    "int16": DataType.Int16,
    "uint16": DataType.UInt16,
    "int32": DataType.Int32,
    "uint32": DataType.UInt32,
    "int64": DataType.Int64,
    "uint64": DataType.UInt64,
    "float32": DataType.Float,
    "float64": DataType.Double,
    "string": DataType.String,
}

#: The Metric (and PropertyValue) field that carries a value of each datatype we send.
FIELD: Final[Mapping[DataType, str]] = {
    DataType.Int8: "int_value",
    DataType.Int16: "int_value",
    DataType.Int32: "int_value",
    DataType.UInt8: "int_value",
    DataType.UInt16: "int_value",
    DataType.UInt32: "long_value",
    DataType.Int64: "long_value",
    DataType.UInt64: "long_value",
    DataType.DateTime: "long_value",
    DataType.Float: "float_value",
    DataType.Double: "double_value",
    DataType.Boolean: "boolean_value",
    DataType.String: "string_value",
    DataType.Text: "string_value",
}

#: Inclusive value range of each integer datatype.
INT_RANGE: Final[Mapping[DataType, tuple[int, int]]] = {
    DataType.Int8: (-(2**7), 2**7 - 1),
    DataType.Int16: (-(2**15), 2**15 - 1),
    DataType.Int32: (-(2**31), 2**31 - 1),
    DataType.Int64: (-(2**63), 2**63 - 1),
    DataType.UInt8: (0, 2**8 - 1),
    DataType.UInt16: (0, 2**16 - 1),
    DataType.UInt32: (0, 2**32 - 1),
    DataType.UInt64: (0, 2**64 - 1),
    DataType.DateTime: (0, 2**64 - 1),
}

#: Signed datatypes and the width of the two's complement they travel in.
SIGNED_WIDTH: Final[Mapping[DataType, int]] = {
    DataType.Int8: 32,
    DataType.Int16: 32,
    DataType.Int32: 32,
    DataType.Int64: 64,
}

#: The Python type of the values a metric of each datatype holds (what the drivers give).
PYTHON_TYPE: Final[Mapping[DataType, type]] = {
    **dict.fromkeys(INT_RANGE, int),
    DataType.Float: float,
    DataType.Double: float,
    DataType.Boolean: bool,
    DataType.String: str,
    DataType.Text: str,
}

#: Doubles hold every integer up to this magnitude exactly.
_EXACT_IN_DOUBLE: Final = 2**53
#: The largest finite float32; a double beyond it would be set into ``float_value`` as inf.
FLOAT32_MAX: Final = 3.4028234663852886e38


def tag_datatype(tag: TagInfo) -> DataType | None:
    """The datatype a tag is born with, or None when only its first value will tell.

    ``None`` for an OPC UA tag (its type is the server's) and for a value type this table
    does not know; the sink then learns it from the value (:func:`value_datatype`).
    """
    if tag.enum is not None:
        return DataType.String  # the label; the raw number is the <name>_code tag
    value_type = tag.value_type
    if value_type is None:
        return None
    declared = DECLARED.get(value_type)
    if declared is None:
        return None
    scaled = tag.scale != 1.0 or tag.offset != 0.0
    if scaled and declared in PYTHON_TYPE and PYTHON_TYPE[declared] in (int, float):
        return DataType.Double  # raw * scale + offset is a float
    return declared


def value_datatype(value: Value) -> DataType | None:
    """The datatype of a value whose tag has no declared type; None if none can carry it
    (None itself, or an integer beyond 64 bits)."""
    if isinstance(value, bool):
        return DataType.Boolean
    if isinstance(value, int):
        if INT_RANGE[DataType.Int64][0] <= value <= INT_RANGE[DataType.Int64][1]:
            return DataType.Int64
        if 0 <= value <= INT_RANGE[DataType.UInt64][1]:
            return DataType.UInt64
        return None
    if isinstance(value, float):
        return DataType.Double
    if isinstance(value, str):
        return DataType.String
    return None


def fits(datatype: DataType, value: Value) -> bool:
    """True when ``value`` travels as ``datatype`` without loss or change of meaning.

    A bool is never an integer here (Python's bool is an int: True would be 1), an int
    fits a Double only while the double holds it exactly, and a Float takes a float within
    float32's range (the value was a float32 to begin with: :func:`tag_datatype`; one
    beyond would travel as infinity).
    """
    expected = PYTHON_TYPE.get(datatype)
    if expected is None or value is None:
        return False
    if isinstance(value, bool):
        return expected is bool
    if isinstance(value, int):
        if expected is int:
            low, high = INT_RANGE[datatype]
            return low <= value <= high
        return datatype is DataType.Double and abs(value) <= _EXACT_IN_DOUBLE
    if datatype is DataType.Float:
        return type(value) is float and -FLOAT32_MAX <= value <= FLOAT32_MAX
    return type(value) is expected


def wire_int(datatype: DataType, value: int) -> int:
    """``value`` as the unsigned field carries it: two's complement for negative signed
    values (32-bit for Int8/16/32, 64-bit for Int64), unchanged otherwise.

    Raises ValueError when the value does not fit ``datatype`` at all.
    """
    low, high = INT_RANGE[datatype]
    if not low <= value <= high:
        raise ValueError(f"{value} does not fit {datatype.name} ({low} .. {high})")
    if value < 0:
        return value + (1 << SIGNED_WIDTH[datatype])
    return value


def from_wire_int(datatype: DataType, raw: int) -> int:
    """The value of a signed or unsigned integer as read from its field (decoding)."""
    width = SIGNED_WIDTH.get(datatype)
    if width is None:
        return raw
    raw &= (1 << width) - 1
    return raw - (1 << width) if raw >= 1 << (width - 1) else raw

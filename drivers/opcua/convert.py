"""OPC UA values -> sample values (``bool | int | float | str | None``), quality and time.

The mapping (documented for users in docs/OPCUA.md):

==========================================  ===========================================
OPC UA (Variant type)                       sample value
==========================================  ===========================================
Boolean                                     bool
SByte, Byte, Int16 ... Int64, UInt64        int
Float                                       float: the shortest decimal that is that
                                            float32 (``14.545378``, not the 17 digits
                                            of its exact value), as Modbus float32
Double                                      float
String                                      str
DateTime                                    str, ISO 8601 UTC: ``2026-01-31T06:00:00.000000Z``;
                                            the null DateTime (1601-01-01) is None, uncertain
enumeration (Int32 with an enum DataType)   str label from the server's EnumStrings /
                                            EnumValues (or the tag's ``enum:``); an unknown
                                            value is ``str(value)``, uncertain
LocalizedText                               its text; QualifiedName ``ns:name``
NodeId, ExpandedNodeId, Guid, StatusCode    str (NodeId string, GUID, code name)
ByteString                                  str, base64
one-dimensional array of any of the above   one sample per element, ``name[0]``, ``name[1]``...
array longer than the tag's                 one sample ``name``: None, bad "array of N
``max_array_length``                        elements, above max_array_length M"
empty array                                 one sample ``name``: None, uncertain "empty array"
null Variant                                None, bad "null value"
multi-dimensional array, structure          None, bad "unsupported type ..."
==========================================  ===========================================

The hot path (a good scalar of a plain type) is a type check and three list stores;
everything else goes through :func:`convert_value`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from asyncua import ua

from drivers.opcua.quality import classify, status_name
from edge_agent.model import Quality, Value
from edge_agent.rounding import shortest_float32

#: The Variant type of a 32-bit float: rounded to its shortest decimal.
FLOAT = ua.VariantType.Float

#: Values a sample can hold as they come from asyncua, without conversion.
PLAIN_TYPES: frozenset[type] = frozenset({bool, int, float, str})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OPC_NULL_DATETIME = datetime(1601, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)

REASON_NULL = "null value"
REASON_EMPTY_ARRAY = "empty array"
REASON_NULL_DATETIME = "null DateTime"

#: What one node's value converts to: a scalar, or the elements of an array.
Converted = tuple[Value | list[tuple[Value, Quality, str]], Quality, str]


def unknown_enum_reason(raw: int) -> str:
    """Same wording as the Modbus driver, so dashboards can match on one text."""
    return f"unknown enum value {raw}"


def datetime_ns(moment: datetime) -> int:
    """Nanoseconds since the Unix epoch of an asyncua (UTC-aware) datetime, exactly."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MICROSECOND * 1000


def iso_datetime(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _scalar(raw: object, enum: Mapping[int, str] | None) -> tuple[Value, Quality, str]:
    """One scalar (or one array element) of any supported type."""
    kind = type(raw)
    if enum is not None and kind is int:
        assert isinstance(raw, int)
        label = enum.get(raw)
        if label is None:
            return str(raw), Quality.UNCERTAIN, unknown_enum_reason(raw)
        return label, Quality.GOOD, ""
    if kind in PLAIN_TYPES:
        return raw, Quality.GOOD, ""  # type: ignore[return-value]
    if isinstance(raw, datetime):
        if raw <= _OPC_NULL_DATETIME.replace(tzinfo=raw.tzinfo):
            return None, Quality.UNCERTAIN, REASON_NULL_DATETIME
        return iso_datetime(raw), Quality.GOOD, ""
    if isinstance(raw, ua.LocalizedText):
        return raw.Text or "", Quality.GOOD, ""
    if isinstance(raw, ua.QualifiedName):
        return raw.to_string(), Quality.GOOD, ""
    if isinstance(raw, ua.NodeId):  # ExpandedNodeId is a NodeId
        return raw.to_string(), Quality.GOOD, ""
    if isinstance(raw, uuid.UUID):
        return str(raw), Quality.GOOD, ""
    if isinstance(raw, bytes | bytearray):
        return base64.b64encode(bytes(raw)).decode("ascii"), Quality.GOOD, ""
    if isinstance(raw, ua.StatusCode):
        return status_name(raw.value), Quality.GOOD, ""
    if isinstance(raw, ua.XmlElement):
        return raw.Value or "", Quality.GOOD, ""
    if raw is None:
        return None, Quality.BAD, REASON_NULL
    return None, Quality.BAD, f"unsupported type {kind.__name__}"


def array_too_long_reason(length: int, limit: int) -> str:
    return f"array of {length} elements, above max_array_length {limit}"


def convert_value(
    variant: ua.Variant | None, enum: Mapping[int, str] | None, max_length: int = 0
) -> Converted:
    """The value(s) a Variant holds; a list of elements for a one-dimensional array of
    at most ``max_length`` elements (0: any length)."""
    if variant is None:
        return None, Quality.BAD, REASON_NULL
    raw = variant.Value
    if not variant.is_array:
        if raw is None and variant.VariantType == ua.VariantType.Null:
            return None, Quality.BAD, REASON_NULL
        if variant.VariantType is FLOAT and type(raw) is float:
            return shortest_float32([raw])[0], Quality.GOOD, ""
        return _scalar(raw, enum)
    if variant.Dimensions is not None and len(variant.Dimensions) > 1:
        dims = "x".join(str(d) for d in variant.Dimensions)
        return None, Quality.BAD, f"unsupported type {dims} array (only 1-D arrays)"
    if not raw:
        return None, Quality.UNCERTAIN, REASON_EMPTY_ARRAY
    if max_length and len(raw) > max_length:
        return None, Quality.BAD, array_too_long_reason(len(raw), max_length)
    if variant.VariantType is FLOAT and all(type(item) is float for item in raw):
        return [(item, Quality.GOOD, "") for item in shortest_float32(raw)], Quality.GOOD, ""
    return [_scalar(item, enum) for item in raw], Quality.GOOD, ""


def decode(value: ua.DataValue, enum: Mapping[int, str] | None, max_length: int = 0) -> Converted:
    """Value, quality and reason of one DataValue (status first, then the value)."""
    status = value.StatusCode
    code = status.value if status is not None else 0
    quality, reason = classify(code)
    if quality is Quality.BAD:
        return None, quality, reason
    converted, value_quality, value_reason = convert_value(value.Value, enum, max_length)
    if quality is Quality.UNCERTAIN and value_quality is Quality.GOOD:
        return converted, quality, reason
    return converted, value_quality, value_reason


def sample_time_ns(value: ua.DataValue, use_source: bool, default_ns: int) -> int:
    """The configured timestamp of a DataValue, else the other one, else ``default_ns``."""
    first, second = (
        (value.SourceTimestamp, value.ServerTimestamp)
        if use_source
        else (value.ServerTimestamp, value.SourceTimestamp)
    )
    moment = first or second
    if moment is None:
        return default_ns
    return datetime_ns(moment)

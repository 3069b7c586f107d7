"""google.protobuf.Struct / Value <-> plain JSON values, walked by hand (faster than json_format)."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2

from gateway.errors import ViolationList

_MAX_SAFE_INT = 2**53


def value_to_json(value: struct_pb2.Value, path: str, problems: ViolationList) -> Any:
    """One Value as a JSON value; integral numbers become ints, non-finite ones are violations."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        n = value.number_value
        if not math.isfinite(n):
            problems.add(path, "numbers must be finite (no NaN or Infinity)", "NON_FINITE_NUMBER")
            return None
        return int(n) if n.is_integer() and -_MAX_SAFE_INT < n < _MAX_SAFE_INT else n
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_json(value.struct_value, path, problems)
    if kind == "list_value":
        return [value_to_json(v, f"{path}[{i}]", problems) for i, v in enumerate(value.list_value.values)]
    return None


def struct_to_json(struct: struct_pb2.Struct, path: str, problems: ViolationList) -> dict[str, Any]:
    """A Struct as a JSON object."""
    return {k: value_to_json(v, f"{path}.{k}", problems) for k, v in struct.fields.items()}


def json_to_value(data: Any, out: struct_pb2.Value) -> None:
    """Fill `out` from a JSON value."""
    if data is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, bool):
        out.bool_value = data
    elif isinstance(data, int | float):
        out.number_value = float(data)
    elif isinstance(data, str):
        out.string_value = data
    elif isinstance(data, dict):
        json_to_struct(data, out.struct_value)
    elif isinstance(data, list):
        lst = out.list_value
        for item in data:
            json_to_value(item, lst.values.add())
    else:
        out.string_value = str(data)


def json_to_struct(data: dict[str, Any], out: struct_pb2.Struct) -> struct_pb2.Struct:
    """Fill `out` from a JSON object and return it."""
    for key, item in data.items():
        json_to_value(item, out.fields[str(key)])
    return out

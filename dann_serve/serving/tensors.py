"""Tensors between the wire (TensorProto, JSON) and numpy, as the server needs them.

The TensorProto codec itself is the client's (:mod:`dann_client.tensors`), so both
ends of the connection read and write tensors with the same code; this module adds
what only a server needs: TensorFlow's short type names for its error messages,
INVALID_ARGUMENT instead of ``ValueError``, and string tensors (``predict_image``'s
encoded images), which only a server reads: from ``string_val`` over gRPC, and over
REST from JSON strings or TensorFlow Serving's ``{"b64": "..."}`` objects for bytes.
They become numpy object arrays of ``bytes``, what a TensorFlow session takes for
DT_STRING. Arrays are written into TensorFlow's messages with
:func:`dann_client.tensors.fill_tensor_proto` directly.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from dann_client.tensors import from_tensor_proto, wire_dtype
from dann_serve.serving.status import ServingError, invalid


def type_name(dtype: int) -> str:
    """TensorFlow's short name of a DataType enum value (``float``, ``int64`` ...)."""
    try:
        return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()
    except ValueError:
        return f"unknown type {dtype}"


STRING = np.dtype(object)  # DT_STRING tensors: an object array of bytes


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype the server decodes a DataType into; INVALID_ARGUMENT if none."""
    if dtype == types_pb2.DT_STRING:
        return STRING
    wire = wire_dtype(dtype)
    if wire is None:
        raise invalid(f"tensors of type {type_name(dtype)} are not supported")
    return wire


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def to_numpy(proto: tensor_pb2.TensorProto, name: str, max_bytes: int | None = None) -> np.ndarray:
    """The array a TensorProto holds; INVALID_ARGUMENT naming the input when it is
    malformed or would decode to more than ``max_bytes`` (for strings: their bytes)."""
    if proto.dtype == types_pb2.DT_STRING:
        return _strings(proto, name, max_bytes)
    try:
        return from_tensor_proto(proto, max_bytes)
    except ValueError as error:
        raise invalid(f"input {name}: {error}") from None


def _strings(proto: tensor_pb2.TensorProto, name: str, max_bytes: int | None) -> np.ndarray:
    """A DT_STRING TensorProto's ``string_val`` as an object array of ``bytes``, with
    TensorFlow's rule for fewer values than elements (the last repeats)."""
    shape = declared_shape(proto, name)
    if proto.tensor_content:
        raise invalid(f"input {name}: string tensors travel in string_val, not tensor_content")
    values = list(proto.string_val)
    count = math.prod(shape)
    if len(values) > count:
        raise invalid(f"input {name}: string_val holds {len(values)} values for {count} elements")
    if values and len(values) < count:
        values += [values[-1]] * (count - len(values))
    array = np.empty(count, dtype=STRING)
    array[:] = list(bounded_strings(name, values, max_bytes)) or [b""] * count
    return array.reshape(shape)


def bounded_strings(name: str, values: Iterable[bytes], max_bytes: int | None) -> Iterator[bytes]:
    """``values`` as they come, INVALID_ARGUMENT as soon as they hold more than
    ``max_bytes`` in all (naming the item when one alone is over), so that what is
    decoded one by one is refused before the rest is."""
    total = 0
    for index, value in enumerate(values):
        total += len(value)
        if max_bytes is not None and len(value) > max_bytes:
            raise invalid(
                f"input {name}[{index}]: {len(value):,} bytes, over the limit of "
                f"{max_bytes:,} (--max-tensor-mb)"
            )
        if max_bytes is not None and total > max_bytes:
            raise invalid(
                f"input {name}: strings 0-{index} hold {total:,} bytes, over the limit of "
                f"{max_bytes:,} (--max-tensor-mb)"
            )
        yield value


def declared_shape(proto: tensor_pb2.TensorProto, name: str) -> tuple[int, ...]:
    """The shape a TensorProto claims, read without decoding it; INVALID_ARGUMENT for an
    unknown rank or a negative dimension."""
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input {name}: a tensor of unknown rank cannot be read")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise invalid(f"input {name}: negative dimension in shape {list(shape)}")
    return shape


# TensorFlow Serving's names of JSON types (json_tensor.cc), for its error message.
_JSON_TYPES = {type(None): "Null", bool: "Boolean", str: "String", dict: "Object", list: "Array"}


def _type_error(value: Any, dtype: np.dtype, name: str) -> ServingError:
    if isinstance(value, bool):
        kind = "True" if value else "False"
    else:
        kind = _JSON_TYPES.get(type(value), "Number")
    text = json.dumps(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    if isinstance(value, list):
        return invalid(
            f"input {name}: JSON Value: {text} found at incorrect level: the arrays of a "
            "tensor must all have the same length at each level"
        )
    return invalid(
        f"input {name}: JSON Value: {text} Type: {kind} is not of expected type: {_tf_name(dtype)}"
    )


def _tf_name(dtype: np.dtype) -> str:
    """TensorFlow's name of a numpy dtype (DataTypeString: float, double, int64 ...)."""
    return {"float32": "float", "float64": "double", "float16": "half"}.get(dtype.name, dtype.name)


_ALLOWED: dict[str, set[type]] = {"f": {float, int}, "i": {int}, "u": {int}, "b": {bool}}


def _lossy(value: Any, dtype: np.dtype, name: str) -> ServingError:
    text = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
    return invalid(
        f"input {name}: Cannot convert JSON value: {text} to {_tf_name(dtype)} without loss "
        "of precision."
    )


def _to_dtype(objects: np.ndarray, flat: list, dtype: np.dtype, name: str) -> np.ndarray:
    """An object array of checked Python numbers as ``dtype``, refusing what would not
    fit (TF Serving's IsLosslessDecimal: no finite value past the type's range)."""
    if dtype.kind == "b":
        return objects.astype(dtype)
    if dtype.kind == "f":
        try:
            wide = objects.astype(np.float64)
        except OverflowError:  # an integer past any double
            largest = max((v for v in flat if type(v) is int), key=abs)
            raise _lossy(largest, dtype, name) from None
        finite = np.abs(wide[np.isfinite(wide)])
        if finite.size and finite.max() > np.finfo(dtype).max:
            raise _lossy(float(finite.max()), dtype, name)
        return wide.astype(dtype)
    info = np.iinfo(dtype)
    if flat and (min(flat) < info.min or max(flat) > info.max):
        raise _lossy(min(flat) if min(flat) < info.min else max(flat), dtype, name)
    return objects.astype(dtype)


def from_json(
    value: Any,
    dtype: np.dtype,
    name: str,
    check_shape: Callable[[tuple[int, ...]], None] | None = None,
) -> np.ndarray:
    """A JSON value (nested lists of numbers) as an array of ``dtype``, under TensorFlow
    Serving's rules: every value a JSON number (no null, no true/false, no string, for
    a boolean tensor only true/false), all arrays of one level equally long, and no
    value past the type's range. ``check_shape`` sees the shape before any conversion."""
    try:
        objects = np.array(value, dtype=object)
    except (ValueError, RecursionError) as error:
        raise invalid(f"input {name}: not a tensor: {error}") from None
    if check_shape is not None:
        check_shape(objects.shape)
    flat = objects.reshape(-1).tolist()
    allowed = _ALLOWED.get(dtype.kind)
    if allowed is None:
        raise invalid(f"input {name}: JSON cannot give tensors of type {dtype.name}")
    if not set(map(type, flat)) <= allowed:
        raise _type_error(next(v for v in flat if type(v) not in allowed), dtype, name)
    return _to_dtype(objects, flat, dtype, name)


def to_json(array: np.ndarray) -> Any:
    """An array as nested lists of plain Python numbers, ready for ``json.dumps``."""
    return array.tolist()


def _string_value(value: Any, name: str, index: int) -> bytes:
    """One JSON value of a string tensor: ``{"b64": "..."}`` (bytes, base64) or a JSON
    string (its UTF-8 bytes), as TensorFlow Serving reads them."""
    if isinstance(value, str):
        return value.encode()
    if is_binary(value):
        text = value["b64"]
        if isinstance(text, str):
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as error:
                raise invalid(f"input {name}[{index}]: 'b64' is not base64: {error}") from None
    shown = json.dumps(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise invalid(
        f'input {name}[{index}]: JSON Value: {shown} is not a string or a {{"b64": ...}} object'
    )


def is_binary(value: Any) -> bool:
    """Whether a JSON value is TensorFlow Serving's encoding of bytes: ``{"b64": ...}``."""
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def strings_from_json(
    value: Any,
    name: str,
    check_shape: Callable[[tuple[int, ...]], None] | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """A JSON value (nested lists of strings or ``{"b64": ...}`` objects) as an object
    array of ``bytes``; INVALID_ARGUMENT naming the first bad item (by its flat index)
    and for more than ``max_bytes`` in all. ``check_shape`` sees the shape first."""
    try:
        objects = np.array(value, dtype=object)
    except (ValueError, RecursionError) as error:
        raise invalid(f"input {name}: not a tensor: {error}") from None
    if objects.size and isinstance(objects.reshape(-1)[0], list):
        raise _type_error(objects.reshape(-1)[0], STRING, name)  # ragged nesting
    if check_shape is not None:
        check_shape(objects.shape)
    flat = objects.reshape(-1)
    decoded = (_string_value(item, name, index) for index, item in enumerate(flat))
    for index, value in enumerate(bounded_strings(name, decoded, max_bytes)):
        flat[index] = value
    return objects

"""Tensors between the wire (TensorProto, JSON) and numpy, as the server needs them.

The TensorProto codec itself is the client's (:mod:`dann_client.tensors`), so both
ends of the connection read and write tensors with the same code; this module adds
what only a server needs: TensorFlow's short type names for its error messages,
and INVALID_ARGUMENT instead of ``ValueError``. Arrays are written into TensorFlow's
messages with :func:`dann_client.tensors.fill_tensor_proto` directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype the server decodes a DataType into; INVALID_ARGUMENT if none."""
    wire = wire_dtype(dtype)
    if wire is None:
        raise invalid(f"tensors of type {type_name(dtype)} are not supported")
    return wire


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def to_numpy(proto: tensor_pb2.TensorProto, name: str, max_bytes: int | None = None) -> np.ndarray:
    """The array a TensorProto holds; INVALID_ARGUMENT naming the input when it is
    malformed or would decode to more than ``max_bytes``."""
    try:
        return from_tensor_proto(proto, max_bytes)
    except ValueError as error:
        raise invalid(f"input {name}: {error}") from None


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


_ALLOWED = {"f": {float, int}, "i": {int}, "u": {int}, "b": {bool}}


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

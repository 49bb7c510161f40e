"""Tensors between the wire (TensorProto, JSON) and numpy, as the server needs them.

The TensorProto codec itself is the client's (:mod:`dann_client.tensors`), so both
ends of the connection read and write tensors with the same code; this module adds
what only a server needs: TensorFlow's short type names for its error messages,
and INVALID_ARGUMENT instead of ``ValueError``. Arrays are written into TensorFlow's
messages with :func:`dann_client.tensors.fill_tensor_proto` directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from dann_client.tensors import from_tensor_proto, wire_dtype
from dann_serve.serving.status import invalid


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


def from_json(value: Any, dtype: np.dtype, name: str) -> np.ndarray:
    """A JSON value (nested lists of numbers) as an array of ``dtype``."""
    if value is None or isinstance(value, (str, dict)):
        raise invalid(f"input {name}: expected a number or nested lists of numbers")
    try:
        array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as error:
        raise invalid(f"input {name}: not a tensor of {dtype.name} values: {error}") from None
    return array


def to_json(array: np.ndarray) -> Any:
    """An array as nested lists of plain Python numbers, ready for ``json.dumps``."""
    return array.tolist()

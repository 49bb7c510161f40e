"""Tensors between the wire (TensorProto, JSON) and numpy, with TensorFlow's rules.

Decoding ``tensor_content`` with ``numpy.frombuffer`` (no copy, no TensorFlow call)
keeps the per-request cost of a large batch small; outputs go back the same way, as
raw little-endian bytes in ``tensor_content``. The typed ``*_val`` fields follow
TensorFlow's ``Tensor::FromProto``: fewer values than elements repeat the last one,
none at all means zeros, more is an error.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from dann_serve.server.status import invalid


class WireType(NamedTuple):
    numpy: np.dtype
    field: str  # the repeated *_val field of TensorProto
    name: str  # TensorFlow's name for the type, as its error messages say it


_WIRE_TYPES = {
    types_pb2.DT_FLOAT: WireType(np.dtype("<f4"), "float_val", "float"),
    types_pb2.DT_DOUBLE: WireType(np.dtype("<f8"), "double_val", "double"),
    types_pb2.DT_INT8: WireType(np.dtype("i1"), "int_val", "int8"),
    types_pb2.DT_INT16: WireType(np.dtype("<i2"), "int_val", "int16"),
    types_pb2.DT_INT32: WireType(np.dtype("<i4"), "int_val", "int32"),
    types_pb2.DT_INT64: WireType(np.dtype("<i8"), "int64_val", "int64"),
    types_pb2.DT_UINT8: WireType(np.dtype("u1"), "int_val", "uint8"),
    types_pb2.DT_BOOL: WireType(np.dtype("?"), "bool_val", "bool"),
}
_BY_NUMPY = {wire.numpy.newbyteorder("="): dtype for dtype, wire in _WIRE_TYPES.items()}


def type_name(dtype: int) -> str:
    """TensorFlow's short name of a DataType enum value (``float``, ``int64`` ...)."""
    wire = _WIRE_TYPES.get(dtype)
    if wire is not None:
        return wire.name
    try:
        return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()
    except ValueError:
        return f"unknown type {dtype}"


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype the server decodes a DataType into; INVALID_ARGUMENT if none."""
    wire = _WIRE_TYPES.get(dtype)
    if wire is None:
        raise invalid(f"tensors of type {type_name(dtype)} are not supported")
    return wire.numpy


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def to_numpy(
    proto: tensor_pb2.TensorProto, name: str, max_bytes: int | None = None
) -> np.ndarray:
    """The array a TensorProto holds; INVALID_ARGUMENT when it does not parse as one.

    ``max_bytes`` caps the decoded size: a typed-value tensor of a few bytes may claim
    any shape (its last value repeats), and without a cap one small message could make
    the server allocate and fill gigabytes.
    """
    wire = _WIRE_TYPES.get(proto.dtype)
    if wire is None:
        raise invalid(f"input {name}: tensors of type {type_name(proto.dtype)} are not supported")
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input {name}: a tensor of unknown rank cannot be fed")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise invalid(f"input {name}: negative dimension in shape {shape_text(shape)}")
    count = math.prod(shape)
    if max_bytes is not None and count * wire.numpy.itemsize > max_bytes:
        raise invalid(
            f"input {name}: shape {shape_text(shape)} of {wire.name} would take "
            f"{count * wire.numpy.itemsize:,} bytes, over the server's limit of {max_bytes:,}"
        )
    if proto.tensor_content:
        want = count * wire.numpy.itemsize
        if len(proto.tensor_content) != want:
            raise invalid(
                f"input {name}: tensor_content holds {len(proto.tensor_content)} bytes but "
                f"shape {shape_text(shape)} of {wire.name} needs {want}"
            )
        return np.frombuffer(proto.tensor_content, dtype=wire.numpy).reshape(shape)
    values = getattr(proto, wire.field)
    if len(values) > count:
        raise invalid(
            f"input {name}: {len(values)} values given for shape {shape_text(shape)}, "
            f"which holds {count}"
        )
    array = np.zeros(count, dtype=wire.numpy)
    if values:
        array[: len(values)] = values
        array[len(values) :] = values[-1]
    return array.reshape(shape)


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A TensorProto carrying ``array`` in ``tensor_content`` (little-endian bytes)."""
    array = np.asarray(array)
    dtype = _BY_NUMPY.get(array.dtype.newbyteorder("="))
    if dtype is None:
        raise TypeError(f"cannot send a numpy array of dtype {array.dtype}")
    wire = _WIRE_TYPES[dtype]
    return tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape]
        ),
        tensor_content=np.ascontiguousarray(array, dtype=wire.numpy).tobytes(),
    )


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

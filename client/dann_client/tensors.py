"""numpy arrays <-> ``tensorflow.TensorProto``, the way TensorFlow lays them out.

This is the one codec of the project: the client uses it with its own message
classes, and ``dann-serve serve`` with TensorFlow's; the functions only touch
the fields, so either class works. Arrays always travel as raw little-endian
bytes in ``tensor_content``: one memory copy instead of a Python float per
element, which is what keeps a batch of images cheap. Decoding also accepts the
typed repeated fields, with TensorFlow's ``Tensor::FromProto`` rules: fewer values
than elements repeat the last one, none at all means zeros, more is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dann_client import messages

# DataType numbers (tensorflow/core/framework/types.proto) of the numeric dtypes,
# and the repeated field each one travels in when it is not in tensor_content.
_BY_NUMBER: dict[int, tuple[np.dtype, str]] = {
    1: (np.dtype("<f4"), "float_val"),
    2: (np.dtype("<f8"), "double_val"),
    3: (np.dtype("<i4"), "int_val"),
    4: (np.dtype("u1"), "int_val"),
    5: (np.dtype("<i2"), "int_val"),
    6: (np.dtype("i1"), "int_val"),
    9: (np.dtype("<i8"), "int64_val"),
    10: (np.dtype("?"), "bool_val"),
    17: (np.dtype("<u2"), "int_val"),
    19: (np.dtype("<f2"), "half_val"),
    22: (np.dtype("<u4"), "uint32_val"),
    23: (np.dtype("<u8"), "uint64_val"),
}
_BY_DTYPE: dict[np.dtype, int] = {dtype: number for number, (dtype, _) in _BY_NUMBER.items()}


def dtype_name(number: int) -> str:
    """``1`` -> ``"DT_FLOAT"``; unknown numbers are shown as numbers."""
    value = messages.DATA_TYPE.values_by_number.get(number)
    return value.name if value is not None else str(number)


def wire_dtype(number: int) -> np.dtype | None:
    """The numpy dtype a DataType number decodes into, or None when it is not numeric."""
    entry = _BY_NUMBER.get(number)
    return entry[0] if entry is not None else None


def fill_tensor_proto(proto: Any, array: np.ndarray) -> Any:
    """Write ``array`` (shape, dtype, bytes in ``tensor_content``) into an empty
    TensorProto of any message class, and return it."""
    array = np.asarray(array)
    wire = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    number = _BY_DTYPE.get(wire)
    if number is None:
        raise ValueError(f"cannot send arrays of dtype {array.dtype}")
    proto.dtype = number
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    proto.tensor_content = np.ascontiguousarray(array, dtype=wire).tobytes()
    return proto


def to_tensor_proto(array: np.ndarray) -> messages.TensorProto:
    """Encode a numeric array as the client's TensorProto."""
    return fill_tensor_proto(messages.TensorProto(), array)


def from_tensor_proto(proto: Any, max_bytes: int | None = None) -> np.ndarray:
    """Decode a TensorProto of any message class into a native-endian array.

    ``max_bytes`` caps the decoded size: a typed-value tensor of a few bytes may
    claim any shape (its last value repeats), so without a cap one small message
    could make the reader allocate and fill gigabytes. Malformed tensors raise
    ``ValueError`` saying what is wrong.
    """
    if proto.dtype not in _BY_NUMBER:
        raise ValueError(f"cannot read tensors of type {dtype_name(proto.dtype)}")
    dtype, field = _BY_NUMBER[proto.dtype]
    if proto.tensor_shape.unknown_rank:
        raise ValueError("a tensor of unknown rank cannot be read")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise ValueError(f"negative dimension in shape {list(shape)}")
    count = math.prod(shape)
    want = count * dtype.itemsize
    if max_bytes is not None and want > max_bytes:
        raise ValueError(
            f"shape {list(shape)} of {dtype_name(proto.dtype)} would take {want:,} bytes, "
            f"over the limit of {max_bytes:,}"
        )
    content = proto.tensor_content  # upb copies the bytes on every read: read once
    if content:
        if len(content) != want:
            raise ValueError(
                f"tensor_content holds {len(content)} bytes, "
                f"shape {list(shape)} of {dtype_name(proto.dtype)} needs {want}"
            )
        flat = np.frombuffer(content, dtype=dtype)
    else:
        flat = _typed_values(getattr(proto, field), dtype, field, count)
    return flat.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _typed_values(values: Sequence[Any], dtype: np.dtype, field: str, count: int) -> np.ndarray:
    """Typed repeated field -> flat array; fewer values than elements repeat the last."""
    if len(values) > count:
        raise ValueError(f"{field} holds {len(values)} values for {count} elements")
    if len(values) == 0:
        return np.zeros(count, dtype=dtype)
    source = np.uint16 if field == "half_val" else None  # float16 travels as its bits
    flat = np.asarray(values, dtype=source or dtype)
    if source is not None:
        flat = flat.astype(np.uint16).view(np.float16)
    out = np.empty(count, dtype=dtype)
    out[: len(flat)] = flat
    out[len(flat) :] = flat[-1]
    return out

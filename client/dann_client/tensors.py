"""numpy arrays <-> ``tensorflow.TensorProto``, the way TensorFlow lays them out.

Requests always carry the raw little-endian bytes in ``tensor_content``: one
memory copy instead of a Python float per element, which is what keeps a batch of
images cheap to send. Responses are read from ``tensor_content`` or, when a
server prefers them, from the typed repeated fields.
"""

from __future__ import annotations

import math

import numpy as np

from dann_client import messages

# DataType numbers (tensorflow/core/framework/types.proto) of the dtypes a
# client can meet, and the repeated field each one travels in when it is not
# in tensor_content.
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


def to_tensor_proto(array: np.ndarray) -> messages.TensorProto:
    """Encode a numeric array with its shape and dtype; bytes go to ``tensor_content``."""
    array = np.asarray(array)
    wire = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    number = _BY_DTYPE.get(wire)
    if number is None:
        raise ValueError(f"cannot send arrays of dtype {array.dtype}")
    proto = messages.TensorProto(dtype=number)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    proto.tensor_content = np.ascontiguousarray(array, dtype=wire).tobytes()
    return proto


def from_tensor_proto(proto: messages.TensorProto) -> np.ndarray:
    """Decode a TensorProto from any server into a native-endian numpy array."""
    if proto.dtype not in _BY_NUMBER:
        raise ValueError(f"cannot read tensors of type {dtype_name(proto.dtype)}")
    dtype, field = _BY_NUMBER[proto.dtype]
    if proto.tensor_shape.unknown_rank:
        raise ValueError("tensor has unknown rank")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    count = math.prod(shape)
    if proto.tensor_content:
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise ValueError(
                f"tensor_content holds {len(proto.tensor_content)} bytes, "
                f"shape {list(shape)} of {dtype_name(proto.dtype)} needs {count * dtype.itemsize}"
            )
        flat = np.frombuffer(proto.tensor_content, dtype=dtype)
    else:
        flat = _typed_values(getattr(proto, field), dtype, field, count)
    return flat.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _typed_values(values, dtype: np.dtype, field: str, count: int) -> np.ndarray:
    """Typed repeated field -> flat array; fewer values than elements repeat the last."""
    source = np.uint16 if field == "half_val" else None  # float16 travels as its bits
    flat = np.asarray(values, dtype=source or dtype)
    if source is not None:
        flat = flat.astype(np.uint16).view(np.float16)
    if len(flat) > count:
        raise ValueError(f"{field} holds {len(flat)} values for {count} elements")
    if len(flat) == 0:
        return np.zeros(count, dtype=dtype)
    if len(flat) < count:
        flat = np.concatenate([flat, np.full(count - len(flat), flat[-1], dtype=flat.dtype)])
    return flat

"""The one TensorProto codec (dann_client.tensors) against TensorFlow's own.

The server decodes requests and encodes responses with the client's codec, in
TensorFlow's message class; these tests hold it to ``tf.make_tensor_proto`` and
``tf.make_ndarray``, which is how TensorFlow Serving itself reads tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from dann_client.tensors import fill_tensor_proto, from_tensor_proto

ARRAYS = [
    np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32),
    np.array([-(2**63), 0, 2**63 - 1], np.int64),
    np.arange(6, dtype=np.int32).reshape(3, 2),
    np.array([[True], [False]]),
    np.arange(5, dtype=np.uint8),
    np.array([1.5, -2.25, 7], np.float16),
    np.zeros((0, 10), np.float32),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_what_the_codec_writes_tensorflow_reads(array):
    proto = fill_tensor_proto(tensor_pb2.TensorProto(), array)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)
    assert tf.make_ndarray(proto).dtype == array.dtype


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_what_tensorflow_writes_the_codec_reads(array):
    proto = tf.make_tensor_proto(array)
    decoded = from_tensor_proto(proto)
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize(
    ("dtype", "field", "values"),
    [
        (np.float32, "float_val", [0.5, -1.0]),
        (np.int64, "int64_val", [2**40, -3]),
        (np.uint8, "int_val", [7, 255]),
        (np.bool_, "bool_val", [True, False]),
        (np.float16, "half_val", np.array([1.5, -2], np.float16).view(np.uint16).tolist()),
    ],
)
def test_typed_fields_read_as_tensorflow_reads_them(dtype, field, values):
    proto = tensor_pb2.TensorProto(dtype=tf.as_dtype(dtype).as_datatype_enum)
    proto.tensor_shape.dim.add(size=5)  # more elements than values: the last one repeats
    getattr(proto, field).extend(values)
    expected = tf.make_ndarray(proto)
    decoded = from_tensor_proto(proto)
    assert decoded.dtype == expected.dtype
    np.testing.assert_array_equal(decoded, expected)


def test_a_short_typed_field_repeats_its_last_value_as_tensorflow_does():
    proto = tf.make_tensor_proto(np.float32(0.25), shape=[2, 3])  # one value, six elements
    np.testing.assert_array_equal(from_tensor_proto(proto), tf.make_ndarray(proto))

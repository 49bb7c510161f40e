"""Input expansion (files, directories, globs, stdin) and numpy <-> TensorProto."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from dann_client import messages
from dann_client.inputs import Unreadable, expand_inputs
from dann_client.tensors import from_tensor_proto, to_tensor_proto


@pytest.fixture
def tree(tmp_path):
    for name in ["b.png", "a.JPG", "notes.txt", "sub/c.webp", "sub/deeper/d.bmp", "empty/.keep"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return tmp_path


def test_directories_are_walked_recursively_in_order_keeping_images(tree):
    found = list(expand_inputs([str(tree)]))
    assert [p[len(str(tree)) + 1 :] for p in found] == [
        "a.JPG",
        "b.png",
        "sub/c.webp",
        "sub/deeper/d.bmp",
    ]


def test_named_files_are_kept_whatever_their_suffix(tree):
    assert list(expand_inputs([str(tree / "notes.txt")])) == [str(tree / "notes.txt")]


def test_glob_patterns_expand_and_missing_inputs_are_reported(tree):
    items = list(expand_inputs([f"{tree}/**/*.bmp", f"{tree}/*.gif", f"{tree}/nope.png"]))
    assert items == [
        str(tree / "sub/deeper/d.bmp"),
        Unreadable(f"{tree}/*.gif", "no files match this pattern"),
        Unreadable(f"{tree}/nope.png", "no such file or directory"),
    ]


def test_a_directory_without_images_is_reported(tree):
    assert list(expand_inputs([str(tree / "empty")])) == [
        Unreadable(str(tree / "empty"), "no image files in this directory")
    ]


def test_an_unreadable_directory_is_reported_with_its_permission_error(tree, monkeypatch):
    """Injected, because root (as in containers) lists any directory whatever its mode."""
    refused = {str(tree / "empty"), str(tree / "sub/deeper")}
    scandir = os.scandir

    def guarded(path):
        if str(path) in refused:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded)
    assert list(expand_inputs([str(tree / "empty"), str(tree / "sub")])) == [
        Unreadable(str(tree / "empty"), "permission denied"),
        str(tree / "sub/c.webp"),
        Unreadable(str(tree / "sub/deeper"), "permission denied"),
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists a directory whatever its mode")
def test_a_directory_without_read_permission_is_reported_so(tree):
    (tree / "empty").chmod(0)
    try:
        assert list(expand_inputs([str(tree / "empty")])) == [
            Unreadable(str(tree / "empty"), "permission denied")
        ]
    finally:
        (tree / "empty").chmod(0o755)


def test_dash_reads_inputs_from_stdin(tree):
    stdin = io.StringIO(f"{tree}/b.png\n\n{tree}/sub\r\n")
    assert list(expand_inputs(["-", str(tree / "a.JPG")], stdin)) == [
        str(tree / "b.png"),
        str(tree / "sub/c.webp"),
        str(tree / "sub/deeper/d.bmp"),
        str(tree / "a.JPG"),
    ]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
        np.array([-(2**63), 0, 2**63 - 1], np.int64),
        np.arange(6, dtype=">i4").reshape(3, 2),  # big-endian input goes out little-endian
        np.array([True, False]),
        np.arange(5, dtype=np.uint8),
        np.array([1.5, -2.25], np.float16),
        np.zeros((0, 10), np.float32),
        np.float64(3.5),  # a scalar has an empty shape
    ],
)
def test_arrays_round_trip_through_tensor_content(array):
    proto = messages.TensorProto.FromString(to_tensor_proto(array).SerializeToString())
    assert proto.tensor_content or array.size == 0
    decoded = from_tensor_proto(proto)
    assert decoded.shape == np.shape(array)
    assert decoded.dtype == np.asarray(array).dtype.newbyteorder("=")
    np.testing.assert_array_equal(decoded, array)


def test_typed_fields_are_read_when_there_is_no_tensor_content():
    proto = messages.TensorProto(dtype=19)  # DT_HALF travels as bit patterns
    proto.tensor_shape.dim.add(size=3)
    proto.half_val.extend(np.array([1.0, -0.5], np.float16).view(np.uint16).tolist())
    np.testing.assert_array_equal(from_tensor_proto(proto), np.array([1, -0.5, -0.5], np.float16))


@pytest.mark.parametrize(
    ("dtype", "shape", "content", "message"),
    [
        (1, [2], b"\0" * 3, "tensor_content holds 3 bytes"),
        (7, [1], b"", "cannot read tensors of type DT_STRING"),
        (1, [-5, 3], b"", "negative dimension"),
        (1, [2, 1000], b"", "over the limit of 4,000"),  # typed fields may claim any shape
        (1, [2**40, 2**20], b"", "over the limit"),
    ],
)
def test_malformed_tensors_are_rejected(dtype, shape, content, message):
    proto = messages.TensorProto(dtype=dtype, tensor_content=content)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    with pytest.raises(ValueError, match=message):
        from_tensor_proto(proto, max_bytes=4000)


def test_unsupported_arrays_are_refused():
    with pytest.raises(ValueError, match="cannot send"):
        to_tensor_proto(np.array(["a"]))

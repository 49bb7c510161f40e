"""``dann-serve serve`` end to end: a real subprocess on free ports serving a real export,
queried with the official ``tensorflow-serving-api`` stubs and over REST, and compared
with the same SavedModel run in this process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from support.helpers import models_copy, outputs, predict_request, rest
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


@pytest.fixture(scope="module")
def server(exported_model: Path, start_server, tmp_path_factory):
    """One server for the module, on a private copy of the export (tests add versions)."""
    model_dir = models_copy(exported_model, tmp_path_factory.mktemp("served"))
    running = start_server(model_dir, "--poll-seconds", "0.5")
    yield running
    assert running.stop(signal.SIGINT) == 0, running.log()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(7).random((8, 32, 32, 3), dtype=np.float32)


def expected(in_process, signature: str, images: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in in_process.signatures[signature](images=images).items()}


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(got[name], value)


# -- gRPC: answers --------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["predict_label", "classify_domain", "serving_default", ""])
def test_grpc_predict_equals_in_process(prediction, in_process, images, signature):
    response = prediction.Predict(predict_request(images, signature), timeout=30)
    got = outputs(response)
    assert_same(got, expected(in_process, signature or "serving_default", images))
    assert response.model_spec.name == "dann"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == (signature or "serving_default")


def test_grpc_predict_typed_values_output_filter_and_version(prediction, in_process, images):
    request = predict_request(images[:2], "predict_label", version=1)
    tensor = request.inputs["images"]
    tensor.ClearField("tensor_content")
    tensor.float_val.extend(images[:2].ravel().tolist())
    request.output_filter.append("label")
    response = prediction.Predict(request, timeout=30)
    assert list(response.outputs) == ["label"]
    want = expected(in_process, "predict_label", images[:2])["label"]
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["label"]), want)


def test_grpc_accepts_a_batch_of_1024(prediction, in_process):
    batch = np.random.default_rng(8).random((1024, 32, 32, 3), dtype=np.float32)
    response = prediction.Predict(predict_request(batch, "predict_label"), timeout=60)
    got = outputs(response)
    assert_same(got, expected(in_process, "predict_label", batch))


def test_grpc_metadata_is_the_saved_signature_defs(prediction, exported_model):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "dann"
    response = prediction.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "dann" and response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    saved = saved_model_pb2.SavedModel.FromString((exported_model / "saved_model.pb").read_bytes())
    assert dict(signature_map.signature_def) == dict(saved.meta_graphs[0].signature_def)
    label = signature_map.signature_def["predict_label"]
    assert [d.size for d in label.inputs["images"].tensor_shape.dim] == [-1, 32, 32, 3]
    assert set(label.outputs) == {"probabilities", "label"}
    assert set(signature_map.signature_def["classify_domain"].outputs) == {
        "probabilities",
        "domain",
    }


def test_grpc_model_status(channel):
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "dann"
    response = stub.GetModelStatus(request, timeout=30)
    [status] = response.model_version_status
    assert (status.version, status.state, status.status.error_code) == (1, AVAILABLE, 0)
    request.model_spec.version.value = 7
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetModelStatus(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


# -- gRPC: refusals ---------------------------------------------------------------------


def _tamper(change):
    def make(images):
        request = predict_request(images, "predict_label")
        change(request, images)
        return request

    return make


BAD_REQUESTS = {
    "unknown model": (grpc.StatusCode.NOT_FOUND, lambda im: predict_request(im, model="nope")),
    "unknown version": (grpc.StatusCode.NOT_FOUND, lambda im: predict_request(im, version=99)),
    "unknown signature": (
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda im: predict_request(im, "nope"),
    ),
    "missing input": (
        grpc.StatusCode.INVALID_ARGUMENT,
        _tamper(lambda r, im: r.inputs.pop("images")),
    ),
    "extra input": (
        grpc.StatusCode.INVALID_ARGUMENT,
        _tamper(lambda r, im: r.inputs["x"].CopyFrom(tf.make_tensor_proto(im))),
    ),
    "wrong dtype": (
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda im: predict_request(im.astype(np.float64), "predict_label"),
    ),
    "wrong shape": (
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda im: predict_request(im[:, :28, :28, :1], "predict_label"),
    ),
    "wrong rank": (
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda im: predict_request(im.reshape(len(im), -1), "predict_label"),
    ),
    "content size": (
        grpc.StatusCode.INVALID_ARGUMENT,
        _tamper(lambda r, im: setattr(r.inputs["images"], "tensor_content", im[:2].tobytes())),
    ),
    "output filter": (
        grpc.StatusCode.INVALID_ARGUMENT,
        _tamper(lambda r, im: r.output_filter.append("nope")),
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_grpc_bad_request_status_and_server_keeps_serving(prediction, images, case):
    code, make = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(make(images), timeout=30)
    assert raised.value.code() == code, raised.value.details()
    assert raised.value.details()
    assert prediction.Predict(predict_request(images[:1]), timeout=30).outputs["label"]


def test_grpc_unimplemented_and_bad_metadata_request(prediction):
    calls = [
        (prediction.Classify, classification_pb2.ClassificationRequest()),
        (prediction.Regress, regression_pb2.RegressionRequest()),
        (prediction.MultiInference, inference_pb2.MultiInferenceRequest()),
    ]
    for method, request in calls:
        with pytest.raises(grpc.RpcError) as raised:
            method(request, timeout=30)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "dann"
    with pytest.raises(grpc.RpcError) as raised:
        prediction.GetModelMetadata(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- REST -------------------------------------------------------------------------------


def test_rest_status_and_metadata(server, exported_model):
    for path in ("/v1/models/dann", "/v1/models/dann/versions/1"):
        code, body = rest(server, path)
        assert code == 200
        assert body == {
            "model_version_status": [
                {
                    "version": "1",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
    code, body = rest(server, "/v1/models/dann/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": "dann", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"predict_label", "classify_domain", "serving_default"} <= set(signatures)
    assert signatures["predict_label"]["inputs"]["images"]["dtype"] == "DT_FLOAT"


def test_rest_predict_row_and_columnar_formats(server, in_process, images):
    want = expected(in_process, "predict_label", images)
    code, body = rest(server, "/v1/models/dann:predict", {"instances": images.tolist()})
    assert code == 200
    rows = body["predictions"]
    assert_same(
        {
            "probabilities": np.array([r["probabilities"] for r in rows]),
            "label": np.array([r["label"] for r in rows]),
        },
        want,
    )

    named = {"instances": [{"images": image.tolist()} for image in images]}
    assert rest(server, "/v1/models/dann/versions/1:predict", named) == (200, body)

    domain = expected(in_process, "classify_domain", images)
    code, body = rest(
        server,
        "/v1/models/dann:predict",
        {"signature_name": "classify_domain", "inputs": images.tolist()},
    )
    assert code == 200
    assert_same({k: np.array(v) for k, v in body["outputs"].items()}, domain)


REST_ERRORS = [
    ("/v1/models/nope:predict", {"instances": [[0.0]]}, 404),
    ("/v1/models/dann/versions/99:predict", {"instances": [[0.0]]}, 404),
    ("/v1/models/nope", None, 404),
    ("/v1/models/dann/versions/99/metadata", None, 404),
    ("/v1/models/dann:explain", {}, 404),
    ("/v1/../../etc/passwd", None, 404),
    ("/v1/models/dann:predict", {"signature_name": "nope", "instances": [[0.0]]}, 400),
    ("/v1/models/dann:predict", {"instances": [[[[0.5, 0.5, 0.5]]]]}, 400),
    ("/v1/models/dann:predict", {"instances": [{"pixels": [0.0]}]}, 400),
    ("/v1/models/dann:predict", {"inputs": {"images": [[1, 2], [3]]}}, 400),
    ("/v1/models/dann:predict", {"inputs": [["a"]]}, 400),
    ("/v1/models/dann:predict", {"signature_name": "predict_label"}, 400),
    ("/v1/models/dann:predict", b"{not json", 400),
]


@pytest.mark.parametrize(("path", "body", "status"), REST_ERRORS)
def test_rest_errors(server, images, path, body, status):
    code, answer = rest(server, path, body)
    assert code == status, answer
    assert set(answer) == {"error"} and answer["error"]
    assert rest(server, "/v1/models/dann:predict", {"instances": images[:1].tolist()})[0] == 200


# -- versions on disk -------------------------------------------------------------------


def _served_version(prediction, images) -> int:
    return prediction.Predict(predict_request(images[:1]), timeout=30).model_spec.version.value


def _wait_for_version(prediction, images, version: int, server) -> None:
    deadline = time.monotonic() + 15
    while _served_version(prediction, images) != version:
        assert time.monotonic() < deadline, f"not serving {version} in 15 s:\n{server.log()}"
        time.sleep(0.2)


def test_new_version_is_picked_up_and_staging_is_ignored(server, prediction, images):
    root = server.model_dir / "dann"
    shutil.copytree(root / "1", root / ".staging-3-999")  # an export in progress
    (root / "2").mkdir()  # a copy by hand, file by file: first only the graph
    shutil.copy2(root / "1" / "saved_model.pb", root / "2" / "saved_model.pb")
    deadline = time.monotonic() + 3
    while "cannot load dann version 2" not in server.log():
        assert time.monotonic() < deadline, "the half-copied version 2 was not tried"
        time.sleep(0.2)
    assert _served_version(prediction, images) == 1
    shutil.copytree(root / "1", root / "2", dirs_exist_ok=True)  # the copy completes
    _wait_for_version(prediction, images, 2, server)
    assert "version 3" not in server.log()
    code, body = rest(server, "/v1/models/dann/versions/2")
    assert code == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"

    shutil.rmtree(root / "2")  # gone from disk: back to version 1
    shutil.rmtree(root / ".staging-3-999")
    _wait_for_version(prediction, images, 1, server)


def test_a_version_tensorflow_serving_could_not_run_is_not_served(
    server, prediction, images, variables_untracked_savedmodel
):
    """Keras 3 weights reached only through keras.Variable: tf.saved_model.load runs such
    a SavedModel, TensorFlow Serving does not, and neither may the local server. With
    its warm-up records (every export has them) the load itself fails, as TensorFlow
    Serving's does, and the version served before stays."""
    root = server.model_dir / "dann"
    staging = root / ".staging-5"  # complete before it gets a version number
    shutil.copytree(variables_untracked_savedmodel, staging)
    shutil.copytree(root / "1" / "assets.extra", staging / "assets.extra")
    staging.rename(root / "5")
    try:
        deadline = time.monotonic() + 15
        while "cannot load dann version 5" not in server.log():
            assert time.monotonic() < deadline, f"version 5 was not tried:\n{server.log()}"
            time.sleep(0.2)
        assert "Could not find variable" in server.log()
        assert _served_version(prediction, images) == 1
        code, body = rest(server, "/v1/models/dann/versions/5")
        assert code == 200 and body["model_version_status"][0]["state"] == "END"
    finally:
        shutil.rmtree(root / "5")


# -- TLS and shutdown -------------------------------------------------------------------


@pytest.mark.slow
def test_tls_grpc_and_sigterm_exits_cleanly(exported_model, start_server, tls_certificate, images):
    cert, key = tls_certificate["cert"], tls_certificate["key"]
    running = start_server(
        exported_model.parent.parent, "--tls-cert", str(cert), "--tls-key", str(key)
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    port = running.grpc_address.rsplit(":", 1)[1]
    with grpc.secure_channel(f"localhost:{port}", credentials) as secure:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(secure)
        assert stub.Predict(predict_request(images[:1]), timeout=30).model_spec.version.value == 1
    with grpc.insecure_channel(running.grpc_address) as plain:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(plain)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(predict_request(images[:1]), timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert running.stop(signal.SIGTERM) == 0, running.log()
    assert "stopped" in running.log()


# Run in a fresh interpreter (argv[1]: "default" or "reuse"): malloc a 3 MB block,
# free it, malloc it again, and print glibc's own account of its memory around that.
_MALLOC_PROBE = r"""
import ctypes, json, sys

from dann_serve.runtime import reuse_large_buffers

libc = ctypes.CDLL("libc.so.6")
if hasattr(libc, "mallinfo2"):
    size_t, mallinfo = ctypes.c_size_t, libc.mallinfo2
else:  # glibc before 2.33: the same fields as int
    size_t, mallinfo = ctypes.c_int, libc.mallinfo
class Info(ctypes.Structure):
    _fields_ = [(name, size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost",
    )]
mallinfo.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

if sys.argv[1] == "reuse":
    assert reuse_large_buffers() is True
size = 3 << 20
before = mallinfo()
first = libc.malloc(size)
allocated = mallinfo()
libc.free(first)
freed = mallinfo()
second = libc.malloc(size)
libc.free(second)
# arena: bytes of the brk heap; hblkhd: bytes in blocks that have a mapping of their own
print(json.dumps({
    "same_block": first == second,
    **{name: {"heap": info.arena, "mapped": info.hblkhd}
       for name, info in (("before", before), ("allocated", allocated), ("freed", freed))},
}))
"""


def _malloc_probe(mode: str) -> dict:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MALLOC_") and name != "GLIBC_TUNABLES"  # glibc's defaults
    }
    result = subprocess.run(
        [sys.executable, "-c", _MALLOC_PROBE, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_server_process_reuses_large_buffers() -> None:
    """glibc only: after ``reuse_large_buffers()`` (which ``dann-serve serve`` calls at
    start), a 3 MB block, the size of a 256-image request, comes from the heap rather
    than a mapping of its own, freeing it leaves the heap's pages in place, and the
    next 3 MB block reuses it. Without the call glibc maps such a block by itself,
    which is what shows that the probe can tell the two apart."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the setting is glibc's")
    size = 3 << 20

    default = _malloc_probe("default")
    assert default["allocated"]["mapped"] - default["before"]["mapped"] >= size, default

    reused = _malloc_probe("reuse")
    assert reused["allocated"]["mapped"] == reused["before"]["mapped"], reused
    assert reused["allocated"]["heap"] >= size, reused
    assert reused["freed"]["heap"] == reused["allocated"]["heap"], reused  # not trimmed
    assert reused["same_block"], reused

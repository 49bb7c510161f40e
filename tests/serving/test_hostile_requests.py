"""``dann-serve serve`` against hostile requests and under load.

Real gRPC with the official ``tensorflow_serving.apis`` stubs (and a raw channel for
bytes that are no message at all) and real REST. After every hostile request a good
one must still be answered on both protocols.

Already covered in test_server.py and not repeated here: missing input, extra input,
wrong dtype, wrong shape and rank, ``tensor_content`` shorter than its shape, unknown
model, version, signature and output (``BAD_REQUESTS`` and ``REST_ERRORS``).
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from support.helpers import outputs, predict_request, rest
from tensorflow_serving.apis import predict_pb2

from harness.load import run_load

METHODS = [
    "/tensorflow.serving.PredictionService/Predict",
    "/tensorflow.serving.PredictionService/GetModelMetadata",
    "/tensorflow.serving.ModelService/GetModelStatus",
]


@pytest.fixture(scope="module")
def server(reliability_server):
    """The server that conftest's ``channel`` and ``prediction`` talk to."""
    return reliability_server


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(11).random((3, 32, 32, 3), dtype=np.float32)


@pytest.fixture()
def still_serving(reliability_server, prediction, images):
    """After the test: a good request is answered over gRPC and REST, correctly."""
    yield
    response = prediction.Predict(predict_request(images, "predict_label"), timeout=30)
    assert outputs(response)["probabilities"].shape == (3, 10)
    code, body = rest(
        reliability_server, "/v1/models/dann:predict", {"instances": images[:1].tolist()}
    )
    assert code == 200 and len(body["predictions"]) == 1, body
    assert reliability_server.process.poll() is None, reliability_server.log()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# -- gRPC -----------------------------------------------------------------------------


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(("signature", "classes"), [("predict_label", 10), ("classify_domain", 2)])
def test_zero_images_get_an_empty_answer(prediction, signature, classes):
    empty = np.zeros((0, 32, 32, 3), np.float32)
    got = outputs(prediction.Predict(predict_request(empty, signature), timeout=30))
    assert got["probabilities"].shape == (0, classes)
    assert got["probabilities"].dtype == np.float32
    decision = "label" if signature == "predict_label" else "domain"
    assert got[decision].shape == (0,) and got[decision].dtype == np.int64


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_answered_and_spoil_only_their_own_image(prediction, images, value):
    batch = images.copy()
    batch[0] = value  # the whole image
    batch[1, 5, 5, 0] = value  # one pixel
    got = outputs(prediction.Predict(predict_request(batch, "predict_label"), timeout=30))
    assert got["probabilities"].shape == (3, 10) and got["label"].shape == (3,)
    alone = outputs(prediction.Predict(predict_request(images[2:], "predict_label"), timeout=30))
    np.testing.assert_allclose(got["probabilities"][2], alone["probabilities"][0], atol=1e-6)


def _typed_values(shape: list[int]) -> predict_pb2.PredictRequest:
    """A few bytes of message whose shape claims ``shape``: one float_val, which
    TensorFlow's rules would repeat into every element."""
    request = predict_request(np.zeros((1, 32, 32, 3), np.float32), "predict_label")
    tensor = request.inputs["images"]
    tensor.ClearField("tensor_content")
    tensor.float_val.append(0.5)
    for dim, size in zip(tensor.tensor_shape.dim, shape, strict=True):
        dim.size = size
    return request


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ([1_000_000, 32, 32, 3], "over the limit"),  # 12 GB if filled in
        ([2**40, 2**10, 32, 3], "over the limit"),  # beyond any memory
        ([-5, 32, 32, 3], "negative dimension"),
    ],
)
def test_a_shape_claiming_more_than_the_content_is_refused_cheaply(
    prediction, reliability_server, shape, words
):
    before = _rss_mb(reliability_server.process.pid)
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(_typed_values(shape), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert words in raised.value.details()
    assert _rss_mb(reliability_server.process.pid) < before + 200


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize("method", METHODS)
def test_bytes_that_are_no_message_are_refused(channel, method, reliability_server):
    raw = channel.unary_unary(method)  # no serializers: the bytes go out as they are
    before = len(reliability_server.log())
    with pytest.raises(grpc.RpcError) as raised:
        raw(b"\xff\xff\xff\xff\x0fnot a protocol buffer", timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protocol buffer" in raised.value.details()
    # ... and writes nothing to the server's log: a peer's rate of garbage is no flood
    # (the access log, when on, has its line as for any request). The live monitor's
    # verdicts on the other tests' traffic may come meanwhile.
    time.sleep(0.2)
    lines = reliability_server.log()[before:].splitlines()
    assert [line for line in lines if " monitor: " not in line] == []


@pytest.mark.usefixtures("still_serving")
def test_a_message_over_the_limit_is_resource_exhausted(prediction, reliability_server):
    count = reliability_server.max_message_bytes // (32 * 32 * 3 * 4) + 1
    big = np.zeros((count, 32, 32, 3), np.float32)
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(predict_request(big, "predict_label"), timeout=30)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in raised.value.details()


# -- REST -----------------------------------------------------------------------------


def _raw_http(server, request: bytes) -> tuple[int, dict]:
    """Send bytes as they are (http.client would fix the framing) and read the answer."""
    host, port = server.rest_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


REST_HOSTILE = {
    "zero images": ({"instances": []}, 400, "No values in 'instances'"),
    "zero images, columnar": ({"inputs": []}, 400, "shape [0]"),
    "nested past the parser's depth": (
        b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
        "JSON Parse error",
    ),
    "not UTF-8": (b'{"instances": "\xff\xfe"}', 400, "JSON Parse error"),
}


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize("case", list(REST_HOSTILE))
def test_rest_hostile_bodies_are_400(reliability_server, case):
    body, status, words = REST_HOSTILE[case]
    code, answer = rest(reliability_server, "/v1/models/dann:predict", body)
    assert (code, set(answer)) == (status, {"error"}), answer
    assert words in answer["error"]


@pytest.mark.usefixtures("still_serving")
def test_rest_non_finite_pixels_are_answered(reliability_server, images):
    batch = images.tolist()
    batch[0][0][0][0], batch[1][0][0][0] = float("nan"), float("-inf")
    text = json.dumps({"instances": batch})  # Python writes NaN and -Infinity, as TF Serving
    assert "NaN" in text and "-Infinity" in text
    code, body = rest(reliability_server, "/v1/models/dann:predict", text.encode())
    assert code == 200 and len(body["predictions"]) == 3, body


@pytest.mark.usefixtures("still_serving")
def test_rest_body_over_the_limit_is_refused_unread(reliability_server):
    size = reliability_server.max_message_bytes + 1
    request = (
        f"POST /v1/models/dann:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
    ).encode() + b"{"
    code, answer = _raw_http(reliability_server, request)
    assert code == 429 and "over the limit" in answer["error"]


@pytest.mark.usefixtures("still_serving")
def test_rest_body_shorter_than_its_length_is_400(reliability_server):
    request = (
        b"POST /v1/models/dann:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 5000\r\n\r\n" + b'{"instances": [[[[0.5'
    )
    code, answer = _raw_http(reliability_server, request)
    assert code == 400 and "without sending complete message body" in answer["error"]


# -- load, and a new version landing under it -------------------------------------------


def _land_version(model_root: Path, version: int) -> None:
    """What ``export_run`` does at its end: build the directory under a name the server
    ignores, then one rename (export_run itself is exercised in bench/load.py)."""
    staging = model_root / f".staging-{version}-test"
    shutil.copytree(model_root / "1", staging)
    staging.rename(model_root / str(version))


@pytest.mark.slow
def test_load_with_a_new_version_landing_has_no_failed_request(reliability_server, images):
    model_root = reliability_server.model_dir / "dann"
    version = max(int(p.name) for p in model_root.iterdir() if p.name.isdigit()) + 1
    batches = np.stack([images[:1], images[1:2], images[2:3]])  # batch 1, as callers send
    landed_at = []

    def land() -> None:
        time.sleep(0.2)  # well inside the load
        landed_at.append(time.monotonic())
        _land_version(model_root, version)

    result = run_load(
        reliability_server.grpc_address,
        clients=4,
        requests=50,
        images=batches,
        while_running=land,
        until_version=version,
        deadline=120,
    )
    print(result.summary())
    assert result.errors == [], result.errors[:5]
    assert result.requests >= 4 * 50
    for seen in result.versions:
        assert len(seen) >= 50
        assert seen == sorted(seen), "a client went back to an older version"
        assert seen[0] < version and seen[-1] == version
    code, body = rest(reliability_server, f"/v1/models/dann/versions/{version}")
    assert code == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"


def test_rest_drops_a_client_that_stalls_mid_request() -> None:
    """A client that sends half its headers must not hold the connection forever."""
    from dann_serve.serving.http_server import HttpServer
    from dann_serve.serving.limits import Limits

    server = HttpServer(
        "127.0.0.1", 0, lambda *_: (200, b"{}"), Limits(rest_timeout=0.3), workers=1
    )
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as stalled:
            stalled.sendall(b"POST /v1/models/dann:predict HTTP/1.1\r\nHost: here\r\n")
            start = time.monotonic()
            assert stalled.recv(1024) == b""  # closed by the server, no answer
            assert time.monotonic() - start < 5
    finally:
        server.stop()

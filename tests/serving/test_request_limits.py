"""``dann-serve serve`` against hostile requests, and its resource bounds.

Each numbered case of docs/RELIABILITY.md's hostile requests that the server answers has
a test here (9 and 10 are the client's, in client/tests): one request, one response (1);
numbers and lengths past their types are 400, never 500 (2); a body shorter than its
Content-Length (3); a client that hangs up (4); a burst of connections (5); a few bytes
of gRPC claiming a huge shape (6); memory after large requests (7, a light version:
bench/probe.py has the full one); versions closed when unloaded (8); non-numbers in an
image (11); the REST deadline against a client dripping its request (12). After each, a
good request is answered on both protocols. docs/RELIABILITY.md lists the bounds."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from support.helpers import models_copy, outputs, predict_request, rest
from tensorflow_serving.apis import predict_pb2

from harness.raw_http import read_responses

DEADLINE = 2.0  # the limits server's --rest-timeout-seconds


@pytest.fixture(scope="module")
def server(exported_model: Path, start_server, tmp_path_factory):
    """A server with small bounds, so that passing each is cheap: a 2 s REST deadline,
    batches of at most 64 images, decoded tensors of at most 1 MiB, 2 requests in flight."""
    model_dir = models_copy(exported_model, tmp_path_factory.mktemp("limits"))
    return start_server(
        model_dir,
        *("--rest-timeout-seconds", str(DEADLINE), "--poll-seconds", "0.3"),
        *("--max-batch-size", "64", "--max-tensor-mb", "1", "--max-in-flight", "2"),
    )


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(17).random((2, 32, 32, 3), dtype=np.float32)


@pytest.fixture()
def still_serving(server, prediction, images):
    """After the test: a good request is answered over gRPC and REST, and the log has
    no traceback."""
    yield
    response = prediction.Predict(predict_request(images, "predict_label"), timeout=30)
    assert outputs(response)["probabilities"].shape == (2, 10)
    code, body = rest(server, "/v1/models/dann:predict", {"instances": images[:1].tolist()})
    assert code == 200 and len(body["predictions"]) == 1, body
    assert server.process.poll() is None
    assert "Traceback" not in server.log() and "internal error" not in server.log(), server.log()


def _address(server) -> tuple[str, int]:
    host, port = server.rest_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _read_all(connection: socket.socket, wait: float = 10.0) -> list[tuple[int, bytes]]:
    """Every response on the connection until the server closes it or ``wait`` s of
    silence: (status, body) each, and nothing after them."""
    answers, _, rest = read_responses(connection, wait, status_line=b"HTTP/1.1 ")
    assert rest == b"", rest[:200]
    return answers


def _exchange(server, payload: bytes, half_close: bool = True, wait: float = 10.0):
    with socket.create_connection(_address(server), timeout=wait) as connection:
        connection.sendall(payload)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        return _read_all(connection, wait)


def _image_json(first: str) -> str:
    """A 32x32x3 image as JSON text, 0.5 everywhere but its first value."""
    row = ",".join(["[0.5,0.5,0.5]"] * 31)
    return f"[[[{first},0.5,0.5],{row}]" + f",[{row},[0.5,0.5,0.5]]" * 31 + "]"


def _post(path: str, body: bytes, headers: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    return head.encode() + body


# -- 1: one request, one response -------------------------------------------------------

SMUGGLED = b"GET /v1/models/SMUGGLED HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v1/models/dann:classify", 501),
        ("POST", "/v1/models/dann:regress", 501),
        ("POST", "/v1/models/dann/metadata", 404),
        ("POST", "/v1/no/such/path", 404),
        ("GET", "/v1/models/dann", 200),
        ("GET", "/v1/models/dann/metadata", 200),
    ],
)
def test_a_body_is_never_read_as_the_next_request(server, method, path, status):
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(SMUGGLED)}\r\n\r\n"
    answers = _exchange(server, head.encode() + SMUGGLED)
    assert [code for code, _ in answers] == [status], answers
    assert b"SMUGGLED" not in answers[0][1]


@pytest.mark.usefixtures("still_serving")
def test_framing_that_could_be_read_two_ways_is_refused(server):
    chunked = b"5\r\nhello\r\n0\r\n\r\n"
    both = (
        (
            b"POST /v1/models/dann:classify HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        + chunked
        + SMUGGLED
    )
    answers = _exchange(server, both)
    assert len(answers) == 1 and answers[0][0] in (400, 501), answers
    twice = (
        "POST /v1/models/dann:classify HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        f"Content-Length: {len(SMUGGLED)}\r\n\r\n"
    ).encode() + SMUGGLED
    assert [code for code, _ in _exchange(server, twice)] == [400]


@pytest.mark.usefixtures("still_serving")
def test_kept_alive_requests_each_get_their_answer_in_order(server, images):
    predict = _post(
        "/v1/models/dann:predict", json.dumps({"instances": images[:1].tolist()}).encode()
    )
    status = b"GET /v1/models/dann HTTP/1.1\r\nHost: t\r\n\r\n"
    classify = _post("/v1/models/dann:classify", b"{}")
    answers = _exchange(server, status + predict + classify + status)
    assert [code for code, _ in answers] == [200, 200, 501, 200]
    assert b"predictions" in answers[1][1] and b"AVAILABLE" in answers[3][1]


@pytest.mark.usefixtures("still_serving")
def test_chunked_and_expect_continue_bodies_are_read(server, images):
    body = json.dumps({"instances": images[:1].tolist()}).encode()
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 1000]), body[i : i + 1000])
        for i in range(0, len(body), 1000)
    )
    request = (
        b"POST /v1/models/dann:predict HTTP/1.1\r\nHost: t\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    )
    assert [code for code, _ in _exchange(server, request)] == [200]
    with socket.create_connection(_address(server), timeout=10) as connection:
        connection.sendall(
            f"POST /v1/models/dann:predict HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        assert connection.recv(1024).startswith(b"HTTP/1.1 100 ")
        connection.sendall(body)
        connection.shutdown(socket.SHUT_WR)
        assert [code for code, _ in _read_all(connection)] == [200]


# -- 2: numbers and lengths past their types --------------------------------------------


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    ("case", "payload", "words"),
    [
        (
            "400-digit integer",
            _post(
                "/v1/models/dann:predict",
                f'{{"inputs": [{_image_json("1" + "0" * 399)}]}}'.encode(),
            ),
            "without loss of precision",
        ),
        (
            "5,000-digit integer",
            _post(
                "/v1/models/dann:predict",
                f'{{"inputs": [{_image_json("9" * 5000)}]}}'.encode(),
            ),
            "JSON Parse error",
        ),
        (
            "version 2^63",
            f"GET /v1/models/dann/versions/{2**63} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
            "Failed to convert version",
        ),
        (
            "version of 5,000 digits",
            b"GET /v1/models/dann/versions/"
            + b"7" * 5000
            + b"/metadata HTTP/1.1\r\nHost: t\r\n\r\n",
            "Failed to convert version",
        ),
        (
            "5,000-digit Content-Length",
            b"POST /v1/models/dann:predict HTTP/1.1\r\nContent-Length: "
            + b"9" * 5000
            + b"\r\n\r\n",
            "Content-Length",
        ),
        (
            "Content-Length: superscript two",
            b"POST /v1/models/dann:predict HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n{}",
            "Content-Length",
        ),
        (
            "negative Content-Length",
            b"POST /v1/models/dann:predict HTTP/1.1\r\nContent-Length: -1\r\n\r\n{}",
            "Content-Length",
        ),
    ],
)
def test_numbers_past_their_types_are_400(server, case, payload, words):
    answers = _exchange(server, payload)
    assert len(answers) == 1 and answers[0][0] == 400, (case, answers)
    assert words in json.loads(answers[0][1])["error"], (case, answers)


# -- 3 and 12: the REST deadline ---------------------------------------------------------

SHORT_BODY = _post("/v1/models/dann:predict", b"x" * 5000)[: -5000 + 21]


@pytest.mark.slow
@pytest.mark.usefixtures("still_serving")
def test_a_body_shorter_than_its_length_gets_504_at_the_deadline(server):
    start = time.monotonic()
    answers = _exchange(server, SHORT_BODY, half_close=False, wait=DEADLINE + 10)
    took = time.monotonic() - start
    assert [code for code, _ in answers] == [504], answers
    assert "Deadline exceeded" in json.loads(answers[0][1])["error"]
    assert DEADLINE - 0.2 < took < DEADLINE + 3


@pytest.mark.usefixtures("still_serving")
def test_a_body_cut_short_by_the_client_is_400_at_once(server):
    start = time.monotonic()
    answers = _exchange(server, SHORT_BODY, half_close=True)
    assert [code for code, _ in answers] == [400], answers
    assert time.monotonic() - start < 1.5


@pytest.mark.slow
@pytest.mark.usefixtures("still_serving")
def test_a_request_dripping_one_byte_at_a_time_is_dropped_at_the_deadline(server):
    """The timeout is on the whole request, not on each read."""
    head = b"GET /v1/models/dann HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100
    start = time.monotonic()
    with socket.create_connection(_address(server), timeout=10) as connection:
        closed = False
        for byte in head:
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            connection.settimeout(0.25)
            try:
                if connection.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            assert time.monotonic() - start < DEADLINE + 5, "still open past the deadline"
    assert closed and time.monotonic() - start < DEADLINE + 1.5


# -- 4: a client that hangs up ------------------------------------------------------------


@pytest.mark.usefixtures("still_serving")
def test_a_client_hanging_up_is_no_error(server, images):
    """Predicts whose connection is reset before the answer: the server goes on, and its
    log holds no traceback (it used to log BrokenPipe tracebacks as internal errors)."""
    batch = np.random.default_rng(4).random((64, 32, 32, 3), dtype=np.float32)
    payload = _post("/v1/models/dann:predict", json.dumps({"instances": batch.tolist()}).encode())
    for _ in range(3):
        with socket.create_connection(_address(server), timeout=30) as connection:
            connection.sendall(payload)
            # linger on, 0 s: close() resets the connection, the answer has nowhere to go
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(1.5)
    assert "Broken" not in server.log() and "reset" not in server.log()


# -- 5: a burst of connections -------------------------------------------------------------


def test_100_simultaneous_connections_are_all_answered_quickly(reliability_server):
    gate = threading.Barrier(100)
    latencies, failures = [], []
    request = b"GET /v1/models/dann HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

    def one() -> None:
        gate.wait()
        start = time.monotonic()
        try:
            answers = _exchange(reliability_server, request, half_close=False, wait=30)
        except OSError as error:
            failures.append(repr(error))
            return
        if [code for code, _ in answers] == [200]:
            latencies.append(time.monotonic() - start)
        else:
            failures.append(answers)

    threads = [threading.Thread(target=one) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(latencies) == 100
    latencies.sort()
    print(f"p50 {latencies[49] * 1000:.0f} ms, p99 {latencies[98] * 1000:.0f} ms")
    assert latencies[98] < 2.0


# -- 6: a few bytes claiming a huge shape ----------------------------------------------


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _claiming(shape: list[int]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "dann"
    tensor = request.inputs["images"]
    tensor.dtype = 1  # DT_FLOAT
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.float_val.append(0.5)
    return request


@pytest.mark.usefixtures("still_serving")
def test_grpc_shape_amplification_is_refused_before_decoding(reliability_server):
    """[21000, 32, 32, 3] is under the old 256 MiB decoded-size cap and was expanded and
    run (5 s, +2 GB); a shape the signature cannot take ([64, 100, 100, 3]) as well."""
    import grpc as grpc_

    from dann_client.contract import SERVER_MAX_MESSAGE_BYTES

    options = [("grpc.max_send_message_length", SERVER_MAX_MESSAGE_BYTES)]
    with grpc_.insecure_channel(reliability_server.grpc_address, options=options) as channel:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for shape, words in (
            ([21000, 32, 32, 3], "over the limit of 1024"),
            ([64, 100, 100, 3], "signature expects [-1,32,32,3]"),
        ):
            request = _claiming(shape)
            assert request.ByteSize() < 64
            before = _rss_mb(reliability_server.process.pid)
            start = time.monotonic()
            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(request, timeout=30)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert words in raised.value.details()
            assert time.monotonic() - start < 1
            assert _rss_mb(reliability_server.process.pid) < before + 20


# -- 7: memory after large requests (light; bench/probe.py runs the full measure) --------


def _big_png() -> bytes:
    """A 2048x2048 16-bit RGBA PNG of smooth gradients: 190 kB on the wire, 32 MB decoded."""
    import tensorflow as tf

    ramp = np.linspace(0, 65535, 2048, dtype=np.float64)
    pixels = np.stack(
        np.broadcast_arrays(ramp[:, None], ramp[None, :], ramp[::-1, None], np.full(1, 65535.0)),
        axis=-1,
    ).astype(np.uint16)
    return tf.io.encode_png(pixels).numpy()


@pytest.mark.slow
def test_memory_returns_after_large_requests(exported_model, start_server):
    """RSS after gRPC predicts that are large in what they make the server hold, not on
    the wire (uint8 batches of 1024 images, 3 MiB; a 2048x2048 PNG, decoded 32 MB), 4 at
    once, stays within 10% of its level after warm-up. Before: +455 MB (65%) kept for
    good after float32 batches (oneDNN's pool, one glibc arena per thread, no trim);
    then +400 MB after messages under 8 MiB, the size that alone used to start a trim."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    running = start_server(exported_model.parent.parent)
    pid = running.process.pid
    small = np.full((1, 32, 32, 3), 0.5, np.float32)
    assert rest(running, "/v1/models/dann:predict", {"instances": small.tolist()})[0] == 200
    time.sleep(1)
    warm = _rss_mb(pid)
    pixels = np.random.default_rng(7).integers(0, 256, (1024, 32, 32, 3), dtype=np.uint8)
    requests = [
        predict_request(pixels, "predict_label_uint8"),
        predict_request(np.array([_big_png()] * 1, dtype=object), "predict_image"),
    ]
    failures = []

    def by_grpc() -> None:
        with grpc.insecure_channel(running.grpc_address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for request in requests * 2:
                try:
                    stub.Predict(request, timeout=120)
                except grpc.RpcError as error:
                    failures.append(f"{error.code()}: {error.details()}")

    threads = [threading.Thread(target=by_grpc) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(2)  # the trim follows the last request by 0.3 s
    after = _rss_mb(pid)
    print(f"RSS after warm-up {warm:.0f} MB, after the large requests {after:.0f} MB")
    assert failures == [] and after <= 1.10 * warm
    running.stop()


# -- bounds ---------------------------------------------------------------------------


@pytest.mark.usefixtures("still_serving")
def test_a_batch_past_the_bound_is_invalid_argument_on_both_protocols(server, prediction):
    batch = np.zeros((65, 32, 32, 3), np.float32)  # --max-batch-size 64
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(predict_request(batch, "predict_label"), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "over the limit of 64" in raised.value.details()
    code, body = rest(server, "/v1/models/dann:predict", {"instances": batch.tolist()})
    assert code == 400 and "over the limit of 64" in body["error"]
    code, body = rest(server, "/v1/models/dann:predict", {"instances": batch[:64].tolist()})
    assert code == 200 and len(body["predictions"]) == 64


@pytest.mark.usefixtures("still_serving")
def test_json_with_more_values_than_any_allowed_tensor_is_refused_unparsed(server):
    """--max-tensor-mb 1: at most 524,288 JSON values and arrays; these are 600,000
    one-element arrays (each a Python list if parsed)."""
    body = b'{"instances": [' + b",".join([b"[0]"] * 600_000) + b"]}"
    start = time.monotonic()
    code, answer = rest(server, "/v1/models/dann:predict", body)
    assert code == 429 and "JSON values" in answer["error"], answer
    assert time.monotonic() - start < 2


@pytest.mark.slow
@pytest.mark.usefixtures("still_serving")
def test_requests_past_the_in_flight_bound_wait_or_are_refused(server, images):
    """--max-in-flight 2: of 24 REST requests at once, each is answered 200 (after
    waiting, its body unread), 429 (more than 4 waiting per slot) or 504 (its wait went
    past the 2 s deadline); of 30 gRPC calls sent at once on one channel, each is OK or
    RESOURCE_EXHAUSTED, refused by grpcio before the servicer runs."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    batch = np.random.default_rng(5).random((64, 32, 32, 3), dtype=np.float32)
    # Encoded once: 24 threads encoding at once would starve each other of the GIL past
    # the 2 s deadline, which the server's idle timeout rightly ends.
    body = json.dumps({"instances": batch.tolist()}).encode()
    rest_codes, failures = [], []
    gate = threading.Barrier(24)

    def by_rest() -> None:
        gate.wait()
        try:
            code, _ = rest(server, "/v1/models/dann:predict", body)
            rest_codes.append(code)
        except OSError as error:  # the answer must come, not a reset
            failures.append(repr(error))

    threads = [threading.Thread(target=by_rest) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(rest_codes) == 24
    assert set(rest_codes) <= {200, 429, 504} and 200 in rest_codes, rest_codes

    request = predict_request(batch, "predict_label")
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(request, timeout=30)  # connected
        calls = [stub.Predict.future(request, timeout=30) for _ in range(30)]
        codes = []
        for call in calls:
            try:
                call.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(("count", "status"), [(3000, 200), (4000, 431)])
def test_a_request_head_over_64_kib_is_431_even_when_it_arrives_whole(server, count, status):
    """4,000 headers (83 kB, sent in one write) used to be answered 200: h11's limit only
    sees a head still incomplete. 3,000 (62 kB) stay within the documented 64 KiB."""
    headers = "".join(f"X-Header-{n}: value\r\n" for n in range(count))
    head = f"GET /v1/models/dann HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode()
    assert (len(head) > 64 * 1024) == (status == 431)
    answers = _exchange(server, head)
    assert [code for code, _ in answers] == [status], answers


# -- 11: only numbers in a float tensor -------------------------------------------------


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("null", "JSON Value: null Type: Null is not of expected type: float"),
        ("true", "JSON Value: true Type: True is not of expected type: float"),
        ('"0.5"', 'JSON Value: "0.5" Type: String is not of expected type: float'),
        ('{"b64": "AA=="}', "Type: Object is not of expected type: float"),
        ("1e39", "Cannot convert JSON value: 1e+39 to float without loss of precision"),
        ("[0.5]", "found at incorrect level"),
    ],
)
def test_rest_refuses_what_is_not_a_float_as_tf_serving_does(server, value, words):
    for body in (
        f'{{"instances": [{_image_json(value)}]}}',
        f'{{"inputs": {{"images": [{_image_json(value)}]}}}}',
    ):
        code, answer = rest(server, "/v1/models/dann:predict", body.encode())
        assert code == 400, answer
        assert words in answer["error"], answer


# -- 8: versions closed when unloaded -----------------------------------------------------


def test_an_unloaded_version_is_closed_after_its_last_request(exported_model, tmp_path, images):
    """A version replaced while a request runs on it answers that request, then its
    session is closed; one replaced while idle is closed at once. (Unloaded versions
    used to be dropped unclosed: about 3 MB kept per load.)"""
    from dann_serve.serving.registry import ModelRegistry

    model_dir = models_copy(exported_model, tmp_path)
    root = model_dir / "dann"
    registry = ModelRegistry(model_dir)
    registry.poll()
    try:
        with registry.using("dann") as first:
            session = first.model._session
            shutil.copytree(root / "1", root / ".staging-2")
            (root / ".staging-2").rename(root / "2")
            registry.poll()
            assert registry.get("dann").version == 2
            answer = first.signature("predict_label").run({"images": images}, ["label"])
            assert answer["label"].shape == (2,) and not session._closed
        assert session._closed and first.model is None

        second = registry.get("dann")
        session = second.model._session
        shutil.rmtree(root / "2")
        registry.poll()
        assert registry.get("dann").version == 1 and session._closed
    finally:
        registry.stop()


# -- folders that are no version ---------------------------------------------------------

STRAY_FOLDERS = ["99999999999999999999", "9223372036854775808", "²", "٣", "0", "01", "-2", "+2"]


def test_only_int64_decimal_folders_are_versions(exported_model, tmp_path, caplog):
    """A folder past int64 (which used to become the newest version and fail every
    Predict and GetModelStatus), one ``str.isdigit`` takes but ``int`` does not (which
    used to fail every poll), and other non-canonical numbers are skipped, each named
    once in the log however many polls see it; a good new version still loads, and the
    export's next version ignores them as well."""
    from tensorflow_serving.apis import get_model_status_pb2

    from dann_serve.export.publish import next_version
    from dann_serve.serving import service
    from dann_serve.serving.registry import ModelRegistry

    model_dir = models_copy(exported_model, tmp_path)
    root = model_dir / "dann"
    for name in STRAY_FOLDERS:
        (root / name).mkdir()
        shutil.copy(root / "1" / "saved_model.pb", root / name)
    assert next_version(root) == 2
    registry = ModelRegistry(model_dir)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "dann"
    try:
        with caplog.at_level("WARNING", logger="dann_serve.serving"):
            registry.poll()
            registry.poll()
        assert registry.get("dann").version == 1
        answer = service.model_status(registry, request)
        assert [entry.version for entry in answer.model_version_status] == [1]
        for name in STRAY_FOLDERS:
            named = [r for r in caplog.records if f"{root / name}:" in r.getMessage()]
            assert len(named) == 1, (name, caplog.text)
        shutil.copytree(root / "1", root / "2")
        registry.poll()
        assert registry.get("dann").version == 2
    finally:
        registry.stop()


def _replace(path: Path, data: bytes) -> None:
    staged = path.with_name(path.name + ".new")
    staged.write_bytes(data)
    staged.replace(path)


def test_an_empty_or_unreadable_config_keeps_what_is_served(exported_model, tmp_path, caplog):
    """A truncated ``models.config`` (which used to unload every model within a poll)
    or one that cannot be read is a bad config: the versions loaded stay served, and
    the poller logs each different failure once, not at every poll."""
    from dann_serve.serving.registry import ConfigError, ModelRegistry

    model_dir = models_copy(exported_model, tmp_path)
    config = model_dir / "models.config"
    good = config.read_text()
    registry = ModelRegistry(model_dir)
    registry.poll()
    try:
        config.write_text("")
        with pytest.raises(ConfigError, match=r"models\.config: lists no model_config_list"):
            registry.poll()
        assert registry.get("dann").version == 1
        with caplog.at_level("INFO", logger="dann_serve.serving"):
            registry.start_polling(0.02)
            time.sleep(0.5)
            # Replaced whole, as an editor saves: a write in place passes through an empty
            # file, a third failure the poller would rightly log.
            _replace(config, b"\xff\xfe")  # not text (a permission is no bar to root)
            time.sleep(0.5)
            _replace(config, good.encode())
            time.sleep(0.5)
        failures = [r.getMessage() for r in caplog.records if "model poll failed" in r.getMessage()]
        assert len(failures) == 2, caplog.text
        assert "model poll succeeds again" in caplog.text
        assert registry.get("dann").version == 1
    finally:
        registry.stop()

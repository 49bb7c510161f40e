"""``--server http://...``: TensorFlow Serving's REST API, against the toy REST server.

Which signature and encoding each kind of export gets (b64 PNGs to predict_image,
uint8 to predict_label_uint8, float32 to predict_label), one metadata call per run,
the same answers and outputs as over gRPC, ``DANN_SERVER``, and the transport's
policy: retries on 503, deadlines, keep-alive connections the server dropped, and one
clear line for each failure.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from click.testing import CliRunner
from toy_serving import grey_image, level_for

from dann_client.cli import cli
from dann_client.contract import SERVER_ENVIRONMENT


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def digits(tmp_path):
    """Five images the toy model answers with labels 2, 7, 9, 0 and 5."""
    return [
        grey_image(tmp_path / f"{i}-{label}.png", level_for(label), size=(40, 30))
        for i, label in enumerate((2, 7, 9, 0, 5))
    ]


def labels(result) -> list[int]:
    return [json.loads(line)["label"] for line in result.stdout.splitlines()]


def predicts(toy_rest) -> list[tuple[str, str]]:
    return [r for r in toy_rest.requests if r[0] == "POST"]


@pytest.mark.parametrize(
    ("image", "uint8", "sent"),
    [
        (True, True, ("predict_image", "uint8")),  # PNGs, decoded by the server
        (False, True, ("predict_label_uint8", "uint8")),
        (False, False, ("predict_label", "float32")),  # an export without the twins
    ],
)
def test_each_export_gets_its_cheapest_signature_with_the_same_answers(
    toy_rest, digits, image, uint8, sent
):
    toy_rest.servicer.image, toy_rest.servicer.uint8 = image, uint8
    paths = [str(p) for p in digits]
    result = run("predict", *paths, "--server", toy_rest.url, "--json", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert labels(result) == [2, 7, 9, 0, 5]
    assert [json.loads(line)["path"] for line in result.stdout.splitlines()] == paths
    assert set(toy_rest.servicer.received) == {sent}
    assert sorted(toy_rest.servicer.batch_sizes) == [1, 2, 2]
    # One metadata call for the run, before the three predict requests.
    assert toy_rest.requests[0] == ("GET", "/v1/models/dann/metadata")
    assert predicts(toy_rest) == [("POST", "/v1/models/dann:predict")] * 3
    assert len(toy_rest.requests) == 4


def test_domain_needs_no_metadata_and_sends_float32(toy_rest, tmp_path):
    toy_rest.servicer.image = toy_rest.servicer.uint8 = True
    dark, bright = grey_image(tmp_path / "d.png", 20), grey_image(tmp_path / "b.png", 230)
    result = run("domain", str(dark), str(bright), "--server", toy_rest.url, "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["domain"], r["domain_name"]) for r in records] == [(0, "source"), (1, "target")]
    assert toy_rest.servicer.received == [("classify_domain", "float32")]
    assert [r[0] for r in toy_rest.requests] == ["POST"]


def test_rest_and_grpc_print_the_same(toy_rest, toy_server, digits):
    servicer, address = toy_server
    for toy in (servicer, toy_rest.servicer):
        toy.uint8 = toy.image = True  # the same model behind both
    paths = [str(p) for p in digits]
    for args in (
        ["predict", *paths, "--top-k", "3"],
        ["predict", *paths, "--format", "csv"],
        ["domain", *paths, "--json"],
        ["status"],
        ["status", "--format", "json", "--version", "3"],
        ["metadata"],
        ["metadata", "--format", "csv"],
    ):
        over_rest = run(*args, "--server", toy_rest.url)
        over_grpc = run(*args, "--server", address)
        assert over_rest.exit_code == over_grpc.exit_code == 0, (args, over_rest.output)
        assert over_rest.stdout == over_grpc.stdout, args
        assert over_rest.stdout


def test_versions_and_labels_go_into_the_url(toy_rest, digits):
    run("predict", str(digits[0]), "--server", toy_rest.url, "--model-version", "3")
    run("status", "--server", toy_rest.url, "--label", "can ary/1")
    assert ("POST", "/v1/models/dann/versions/3:predict") in toy_rest.requests
    assert ("GET", "/v1/models/dann/labels/can%20ary%2F1") in toy_rest.requests


def test_a_url_with_a_path_prefix_is_kept(toy_rest):
    result = run("status", "--server", toy_rest.url + "/")
    assert result.exit_code == 0, result.output
    result = run("status", "--server", toy_rest.url + "/serving")
    assert result.exit_code == 4
    assert toy_rest.requests[-1] == ("GET", "/serving/v1/models/dann")


def test_dann_server_sets_the_default_and_server_wins(toy_rest, toy_server, digits):
    _, address = toy_server
    env = {SERVER_ENVIRONMENT: toy_rest.url}
    result = run("predict", str(digits[1]), env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{digits[1]}: 7 ")
    assert predicts(toy_rest)
    toy_rest.requests.clear()
    result = run("predict", str(digits[1]), "--server", address, env=env)
    assert result.exit_code == 0, result.output
    assert toy_rest.requests == []
    result = run("status", env={SERVER_ENVIRONMENT: address})
    assert result.exit_code == 0 and "AVAILABLE" in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "nope"], "HTTP 404: Servable not found: nope"),
        (["--version", "99"], "HTTP 404: version 99 not found"),
    ],
)
def test_rejections_exit_4_with_the_servers_text(toy_rest, digits, args, words):
    result = run("predict", str(digits[0]), "--server", toy_rest.url, *args)
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr == f"dann-client: server {toy_rest.url} rejected the request: {words}\n"


def test_nobody_listening_exits_3_naming_the_url(free_port, digits):
    url = f"http://127.0.0.1:{free_port}"
    for command in (["predict", str(digits[0])], ["status"], ["metadata"]):
        result = run(*command, "--server", url, "--retries", "1")
        assert result.exit_code == 3, result.output
        assert result.stderr == (
            f"dann-client: cannot reach server {url} after 2 attempts: connection refused\n"
        )


def test_503_is_retried_with_backoff(toy_rest, digits):
    toy_rest.servicer.unavailable_first = 2
    result = run("predict", str(digits[0]), "--server", toy_rest.url, "--retries", "2")
    assert result.exit_code == 0, result.output
    toy_rest.servicer.unavailable_first = 2
    result = run("predict", str(digits[0]), "--server", toy_rest.url, "--retries", "1")
    assert result.exit_code == 3
    assert result.stderr == (
        f"dann-client: cannot reach server {toy_rest.url} after 2 attempts: "
        "HTTP 503: toy server is warming up\n"
    )


def test_a_slow_server_times_out_with_exit_3(toy_rest, digits):
    toy_rest.servicer.delay = 0.5
    result = run("predict", str(digits[0]), "--server", toy_rest.url, "--timeout", "0.1")
    assert result.exit_code == 3
    assert result.stderr == f"dann-client: server {toy_rest.url} did not answer within 0.1 s\n"
    # The toy server still answers the abandoned request: wait for it, or on a busy
    # machine its batch lands in a later test's count.
    deadline = time.monotonic() + 30
    while not toy_rest.servicer.batch_sizes and time.monotonic() < deadline:
        time.sleep(0.01)


def test_connections_the_server_dropped_are_reopened_without_a_retry(toy_rest, digits):
    from dann_client.predict import predict_files
    from dann_client.rest import RestTransport
    from dann_client.rest_service import RestBackend

    toy_rest.drop_idle = True
    with RestTransport(toy_rest.url, retries=0) as transport:
        backend = RestBackend(transport)
        results = list(predict_files(digits * 3, backend, batch_size=1, in_flight=1))
    assert [r.index for r in results] == [2, 7, 9, 0, 5] * 3


def test_requests_stay_under_the_message_limit(toy_rest, digits):
    from dann_client.predict import predict_files
    from dann_client.remote import Wire
    from dann_client.rest import RestTransport
    from dann_client.rest_service import RestBackend

    with RestTransport(toy_rest.url, max_message_bytes=200 * 1024) as transport:
        backend = RestBackend(transport, wires=(Wire.FLOAT32,))
        assert backend.batch_limit("predict_label") == 3  # ~64 KiB of JSON per image
        results = list(predict_files(digits, backend, batch_size=64))
    assert [r.index for r in results] == [2, 7, 9, 0, 5]
    assert sorted(toy_rest.servicer.batch_sizes) == [2, 3]


@pytest.mark.parametrize(
    "server",
    ["ftp://localhost:8501", "http://", "http://host:port", "http://h:1/?x=1", "http://[::1"],
)
def test_servers_that_are_neither_grpc_nor_rest_are_usage_errors(server, digits):
    result = run("predict", str(digits[0]), "--server", server)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"dann-client: --server {server!r}")


def test_tls_options_need_https(toy_rest):
    result = run("status", "--server", toy_rest.url, "--tls")
    assert result.exit_code == 2
    assert "need https://" in result.stderr


def test_https_verifies_the_server_with_the_ca_certificate(tls_rest, tls_files, digits):
    ca = ["--ca-cert", str(tls_files["cert"])]
    result = run("predict", str(digits[1]), "--server", tls_rest.url, *ca)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{digits[1]}: 7 ")
    assert run("status", "--server", tls_rest.url, "--tls", *ca).exit_code == 0
    unknown = run("status", "--server", tls_rest.url, "--retries", "0")  # system roots only
    assert unknown.exit_code == 3
    assert "certificate verify failed" in unknown.stderr and unknown.stderr.count("\n") == 1
    bad = run("status", "--server", tls_rest.url, "--ca-cert", __file__)
    assert bad.exit_code == 2 and "cannot use --ca-cert" in bad.stderr


@pytest.fixture
def dribbling_server():
    """A server that answers a status request a byte every 0.2 s: each read returns in
    time, so only a deadline on the whole answer stops the client."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + b" " * 200
            for byte in answer:
                if stop.wait(0.2):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    thread.join(5)


def test_the_timeout_bounds_reading_the_whole_answer(dribbling_server):
    started = time.monotonic()
    result = run("status", "--server", dribbling_server, "--timeout", "1", "--retries", "0")
    elapsed = time.monotonic() - started
    assert result.exit_code == 3, result.output
    assert "did not answer within 1 s" in result.output
    assert elapsed < 3, elapsed

"""The dann-client command: exit statuses, output, backends, transport behaviour."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from toy_serving import MODEL_VERSION, grey_image, level_for

from dann_client.cli import cli
from dann_client.preprocessing import load_image, to_model_input


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.fixture
def digits(tmp_path):
    """Three images the toy server answers with labels 2, 7 and 9."""
    return [grey_image(tmp_path / f"{label}.png", level_for(label)) for label in (2, 7, 9)]


# --- usage errors: exit 2 ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["predict"],  # no inputs
        ["predict", "x.png", "--version", "1", "--label", "stable"],
        ["status", "--version", "1", "--label", "stable"],
        ["predict", "x.png", "--backend", "onnx"],  # no --onnx
        ["predict", "x.png", "--backend", "server", "--onnx", __file__],
        ["predict", "x.png", "--top-k", "0"],
        ["predict", "x.png", "--signature", "serving_nothing"],
        ["predict", "x.png", "--ca-cert", "/no/such/ca.pem"],
        ["predict", "x.png", "--background", "not-a-colour"],
        ["predict", "x.png", "--timeout", "0"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--timeout", "inf"),
        ("--timeout", "nan"),
        ("--timeout", "1e300"),
        ("--timeout", "-1"),
        ("--retries", "99999999999999999999"),
        ("--version", "99999999999999999999"),  # past int64, TF Serving's version type
        ("--batch-size", "99999999999999999999"),
        ("--top-k", "nan"),
    ],
)
@pytest.mark.parametrize("server", ["127.0.0.1:1", "http://127.0.0.1:1"])
def test_impossible_numbers_are_usage_errors_naming_the_option(server, option, value):
    command = ["status"] if option in ("--timeout", "--retries", "--version") else ["predict", "x"]
    result = run(*command, "--server", server, "--retries", "0", option, value)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert f"'{option}" in error, error


@pytest.mark.parametrize("port", ["99687", "65536", "0", "x"])
@pytest.mark.parametrize("scheme", ["", "http://"])
def test_a_port_outside_1_to_65535_is_a_usage_error_over_both_protocols(scheme, port):
    result = run("status", "--server", f"{scheme}127.0.0.1:{port}", "--retries", "0")
    assert result.exit_code == 2, result.output
    assert result.output.strip().endswith("give one from 1 to 65535"), result.output


def test_the_preprocess_scale_is_bounded_as_other_numbers(tmp_path):
    result = run(
        "preprocess", str(tmp_path / "x.png"), "-o", str(tmp_path / "y.png"), "--scale", "nan"
    )
    assert result.exit_code == 2, result.output
    assert "'--scale'" in result.output


@pytest.mark.parametrize("backend", ["server", "grpc"])
def test_backend_server_and_its_old_name_ask_the_server_over_either_protocol(
    toy_server, toy_rest, digits, backend
):
    _, address = toy_server
    for server in (address, toy_rest.url):
        result = run("predict", *map(str, digits), "--server", server, "--backend", backend)
        assert result.exit_code == 0, result.output
        assert [line.split(": ")[1][0] for line in result.stdout.splitlines()] == ["2", "7", "9"]


# --- the onnx backend: no server needed -------------------------------------------


def _expected_labels(paths, weights):
    batch = to_model_input(np.stack([load_image(p) for p in paths]))
    return list((batch.reshape(len(paths), -1) @ weights).argmax(axis=1))


def test_onnx_backend_answers_and_unreadable_files_cost_one_line_each(tmp_path, onnx_models):
    rng = np.random.default_rng(5)
    good = []
    for i in range(5):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path)
        good.append(path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    missing = tmp_path / "missing.png"

    result = run(
        "predict",
        str(good[0]),
        str(tmp_path / "broken.png"),
        str(missing),
        *map(str, good[1:]),
        "--onnx",
        str(onnx_models["predict_label"]),
        "--json",
        "--batch-size",
        "2",
    )

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'broken.png'}: not an image file Pillow can read",
        f"{missing}: no such file or directory",
    ]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(p) for p in good]
    assert [r["label"] for r in records] == _expected_labels(
        good, onnx_models["predict_label_weights"]
    )
    for record in records:
        assert len(record["probabilities"]) == 10
        assert record["confidence"] == pytest.approx(max(record["probabilities"]), abs=1e-6)


def test_onnx_domain_from_an_export_directory(digits, onnx_models):
    export_dir = onnx_models["dir"].parent
    result = run("domain", *map(str, digits), "--backend", "onnx", "--onnx", str(export_dir))
    assert result.exit_code == 0, result.output
    expected = _expected_labels(digits, onnx_models["classify_domain_weights"])
    names = [line.split(": ")[1].split(" ")[0] for line in result.stdout.splitlines()]
    assert names == [("source", "target")[i] for i in expected]


def test_onnx_missing_signature_file_is_a_usage_error(tmp_path, digits, onnx_models):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "predict_label.onnx").write_bytes(onnx_models["predict_label"].read_bytes())
    result = run("domain", str(digits[0]), "--onnx", str(lonely))
    assert result.exit_code == 2
    assert "no classify_domain.onnx" in result.stderr


# --- against a real gRPC server (the toy one in conftest) -------------------------


def test_predict_over_grpc_in_order_and_batched(toy_server, digits):
    servicer, address = toy_server
    paths = [str(p) for p in digits * 3]  # 9 images
    result = run("predict", *paths, "--server", address, "--batch-size", "4", "--top-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == ["2", "7", "9"] * 3
    assert "top-2: 2 0.910, " in lines[0]
    # Several batches are in flight at once, so they may reach the server in any order.
    assert sorted(servicer.batch_sizes, reverse=True) == [4, 4, 1]


def test_stdin_paths_and_json_output(toy_server, digits):
    _, address = toy_server
    stdin = "".join(f"{p}\n" for p in digits)
    result = run("predict", "-", "--server", address, "--json", "--version", "3", input=stdin)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["label"] for line in result.stdout.splitlines()] == [2, 7, 9]


def test_domain_over_grpc(toy_server, tmp_path):
    _, address = toy_server
    dark, bright = grey_image(tmp_path / "d.png", 20), grey_image(tmp_path / "b.png", 230)
    result = run("domain", str(dark), str(bright), "--server", address, "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["domain"], r["domain_name"]) for r in records] == [(0, "source"), (1, "target")]
    result = run("domain", str(bright), "--server", address, "--top-k", "2")
    assert result.stdout == f"{bright}: target (0.950)  top-2: target 0.950, source 0.050\n"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--model", "nope"], "NOT_FOUND"),
        (["--version", "99"], "NOT_FOUND"),
    ],
)
def test_server_rejections_exit_4_with_one_line(toy_server, digits, args, code):
    _, address = toy_server
    result = run("predict", str(digits[0]), "--server", address, *args)
    assert result.exit_code == 4
    assert result.stderr.count("\n") == 1 and code in result.stderr and address in result.stderr


def test_unknown_signature_is_failed_precondition(toy_server, digits):
    from dann_client.errors import ServerRejected
    from dann_client.predict import predict_files
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    _, address = toy_server
    with Transport(address) as transport, pytest.raises(ServerRejected) as caught:
        list(predict_files(digits, GrpcBackend(transport), signature="serving_nothing"))
    assert caught.value.code == "FAILED_PRECONDITION" and caught.value.exit_code == 4


def test_unavailable_is_retried_with_backoff(toy_server, digits):
    servicer, address = toy_server
    servicer.unavailable_first = 2
    result = run("predict", str(digits[0]), "--server", address, "--retries", "2")
    assert result.exit_code == 0, result.output
    servicer.unavailable_first = 2
    result = run("predict", str(digits[0]), "--server", address, "--retries", "1")
    assert result.exit_code == 3
    assert f"cannot reach server {address} after 2 attempts" in result.stderr


def test_a_server_that_comes_up_late_is_found_by_the_retries(digits, free_port):
    import threading

    from toy_serving import ToyServing, start_server

    address = f"127.0.0.1:{free_port}"
    started = []
    starter = threading.Timer(0.3, lambda: started.append(start_server(ToyServing(), address)[0]))
    starter.start()
    try:
        result = run("predict", str(digits[0]), "--server", address, "--retries", "6")
    finally:
        starter.join()
        for server in started:
            server.stop(None)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{digits[0]}: 2 ")


def test_a_slow_server_times_out_with_exit_3(toy_server, digits):
    servicer, address = toy_server
    servicer.delay = 0.5
    result = run("predict", str(digits[0]), "--server", address, "--timeout", "0.1")
    assert result.exit_code == 3
    assert result.stderr.strip() == f"dann-client: server {address} did not answer within 0.1 s"
    # The toy server still answers the abandoned call: wait for it, or on a busy machine
    # its batch lands in a later test's count.
    deadline = time.monotonic() + 30
    while not servicer.batch_sizes and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_server_slow_to_connect_is_reached_within_the_timeout(toy_server, digits):
    from toy_serving import SlowProxy

    _, address = toy_server
    proxy = SlowProxy(address, delay=0.3)  # every connection's handshake takes 0.3 s
    try:
        # One attempt: a growing reconnect backoff must not be what lets it through.
        result = run(
            "predict", str(digits[0]), "--server", proxy.address, "--timeout", "2", "--retries", "0"
        )
    finally:
        proxy.close()
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{digits[0]}: 2 ")


def test_a_server_too_slow_to_connect_times_out_in_about_the_timeout(digits):
    from toy_serving import SlowProxy

    proxy = SlowProxy(None, delay=30)  # accepts the connection, never answers
    started = time.perf_counter()
    try:
        result = run("predict", str(digits[0]), "--server", proxy.address, "--timeout", "0.2")
    finally:
        proxy.close()
    elapsed = time.perf_counter() - started
    assert result.exit_code == 3
    assert result.stderr == f"dann-client: server {proxy.address} did not answer within 0.2 s\n"
    assert 0.2 <= elapsed < 1.5


def test_requests_stay_under_the_message_limit(toy_server, digits):
    from dann_client.predict import predict_files
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    servicer, address = toy_server
    with Transport(address, max_message_bytes=64 * 1024) as transport:
        backend = GrpcBackend(transport)
        # (64 KiB - 16 KiB overhead) // 12 KiB per float32 image
        assert backend.batch_limit("predict_label") == 4
        results = list(predict_files(digits * 4, backend, batch_size=256))
    assert [r.index for r in results] == [2, 7, 9] * 4
    assert servicer.batch_sizes == [4, 4, 4]


def test_uint8_goes_to_predict_label_uint8_when_the_model_has_it(toy_server, digits):
    servicer, address = toy_server
    paths = [str(p) for p in digits * 3]
    old = run("predict", *paths, "--server", address, "--json", "--batch-size", "4")
    assert set(servicer.received) == {("predict_label", "float32")}
    servicer.reset()
    servicer.uint8 = True
    new = run("predict", *paths, "--server", address, "--json", "--batch-size", "4")
    assert old.exit_code == new.exit_code == 0, new.output
    assert new.stdout == old.stdout  # the same answers, in the same order
    assert set(servicer.received) == {("predict_label_uint8", "uint8")}
    assert servicer.metadata_calls == 1  # once per run, not per batch
    assert sorted(servicer.batch_sizes, reverse=True) == [4, 4, 1]


def test_domain_asks_no_metadata_and_sends_float32(toy_server, digits):
    servicer, address = toy_server
    servicer.uint8 = True
    result = run("domain", *map(str, digits), "--server", address)
    assert result.exit_code == 0, result.output
    assert servicer.metadata_calls == 0
    assert set(servicer.received) == {("classify_domain", "float32")}


def test_uint8_batches_may_be_four_times_larger(toy_server):
    from dann_client.remote import Route, Wire
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    servicer, address = toy_server
    servicer.uint8 = True
    with Transport(address, max_message_bytes=64 * 1024) as transport:
        backend = GrpcBackend(transport)
        assert backend.route("predict_label") == Route("predict_label_uint8", Wire.UINT8)
        assert backend.batch_limit("predict_label") == 16  # (64 - 16) KiB // 3 KiB
        forced = GrpcBackend(transport, wires=(Wire.FLOAT32,))
        assert forced.route("predict_label") == Route("predict_label", Wire.FLOAT32)
    assert servicer.metadata_calls == 1  # the float32-only backend needs none


def test_a_server_without_metadata_still_gets_float32(toy_server, digits):
    servicer, address = toy_server
    servicer.uint8 = True
    servicer.metadata_refusal = grpc.StatusCode.UNIMPLEMENTED
    result = run("predict", str(digits[1]), "--server", address)
    assert result.exit_code == 0, result.output
    assert servicer.received == [("predict_label", "float32")]
    servicer.metadata_refusal = grpc.StatusCode.PERMISSION_DENIED  # not ignored
    result = run("predict", str(digits[1]), "--server", address)
    assert result.exit_code == 4 and "PERMISSION_DENIED" in result.stderr


def test_batches_in_flight_overlap_and_results_keep_input_order(toy_server, tmp_path):
    from dann_client.predict import predict_files
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    servicer, address = toy_server
    servicer.delay = 0.3  # long enough that the batches surely overlap
    labels = [5, 1, 8, 0, 3, 9, 2]
    paths = [grey_image(tmp_path / f"{i}.png", level_for(k)) for i, k in enumerate(labels)]
    with Transport(address) as transport:
        results = list(predict_files(paths, GrpcBackend(transport), batch_size=1, in_flight=3))
    assert [r.index for r in results] == labels
    assert [r.path for r in results] == [str(p) for p in paths]
    assert servicer.most_active == 3  # as many at once as asked, and never more


def test_status_and_metadata(toy_server):
    _, address = toy_server
    result = run("status", "--server", address)
    assert result.exit_code == 0 and result.stdout == f"dann version {MODEL_VERSION}: AVAILABLE\n"
    result = run("status", "--server", address, "--json")
    assert json.loads(result.stdout)["state"] == "AVAILABLE"

    result = run("metadata", "--server", address)
    assert result.exit_code == 0, result.output
    assert "    input  images: DT_FLOAT [-1, 32, 32, 3]" in result.stdout
    assert "    output domain: DT_INT64 [-1]" in result.stdout
    result = run("metadata", "--server", address, "--json")
    records = {r["signature"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert records["predict_label"]["outputs"]["probabilities"]["shape"] == [-1, 10]


def test_tls_with_a_ca_certificate(tls_server, tls_files, digits):
    _, address = tls_server
    result = run(
        "predict", str(digits[1]), "--server", address, "--ca-cert", str(tls_files["cert"])
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{digits[1]}: 7 ")
    plain = run("predict", str(digits[1]), "--server", address, "--retries", "0")
    assert plain.exit_code == 3


def test_preprocess_writes_what_the_model_sees(tmp_path):
    Image.new("RGB", (60, 20), (10, 200, 30)).save(tmp_path / "in.png")
    result = run("preprocess", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "out.png")), load_image(tmp_path / "in.png")
    )
    result = run("preprocess", str(tmp_path / "nope.png"), "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path / 'nope.png'}: no such file\n"


def test_control_characters_in_paths_do_not_split_text_lines(toy_server, tmp_path):
    _, address = toy_server
    odd = grey_image(tmp_path / "two\nlines\t.png", level_for(4))
    plain = grey_image(tmp_path / "plain name.png", level_for(6))
    broken = tmp_path / "bro\rken\n.png"
    broken.write_bytes(b"not an image")
    result = run("predict", str(odd), str(broken), str(plain), "--server", address)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith(f"{str(odd)!r}: 4 (0.910)")
    assert result.stdout.splitlines()[1].startswith(f"{plain}: 6 (0.910)")  # unchanged
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == f"{str(broken)!r}: not an image file Pillow can read\n"
    json_result = run("predict", str(odd), "--server", address, "--json")
    assert json.loads(json_result.stdout)["path"] == str(odd)  # JSON keeps the name as is
    result = run("preprocess", str(broken), "-o", str(tmp_path / "out.png"))
    assert result.stderr == f"{str(broken)!r}: not an image file Pillow can read\n"


# --- as a real process -------------------------------------------------------------


def _client(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from dann_client.cli import main; sys.argv[0] = 'dann-client'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_unreachable_server_exits_3_with_one_line_naming_it(digits, free_port):
    address = f"127.0.0.1:{free_port}"
    result = _client("predict", str(digits[0]), "--server", address, "--retries", "1")
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and address in lines[0] and lines[0].startswith("dann-client: ")


def test_importing_the_cli_loads_no_tensorflow_nor_heavy_modules():
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import dann_client.cli"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    top_level = {name.split(".")[0] for name in imported}
    assert "dann_client.cli" in imported
    assert not {"tensorflow", "keras"} & top_level
    # Kept lazy so that --help and usage errors answer at once.
    assert not {"numpy", "PIL", "grpc", "google", "onnxruntime"} & top_level


@pytest.mark.parametrize("scheme", ["", "http://"])
def test_unreadable_inputs_are_reported_before_an_unreachable_server(tmp_path, digits, scheme):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"{scheme}127.0.0.1:{probe.getsockname()[1]}"
    result = run("predict", str(broken), str(digits[0]), "--server", address, "--retries", "0")
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert lines[0] == f"{broken}: not an image file Pillow can read"
    assert lines[1].startswith(f"dann-client: cannot reach server {address}") and len(lines) == 2


def test_a_run_with_nothing_readable_needs_no_server(tmp_path):
    result = run("predict", str(tmp_path / "gone.png"), "--server", "127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path / 'gone.png'}: no such file or directory\n"

"""``dann-client`` end to end: the real console script, run as a user runs it, on real
image files, against a real ``dann-serve serve`` subprocess that holds a real export;
answers compared with the same SavedModel run in this process.

One server for the module. Its model directory holds the export as ``dann``, a copy
named ``old`` without ``predict_image`` and ``predict_label_uint8`` (an export from
before the twins existed, which the client must still serve, with float32), and a copy named
``legacy`` that also lacks ``classify_domain`` (as an export from before the domain
head would), so that the CLI itself can meet FAILED_PRECONDITION: ``--signature``
only offers the contract's names, and a typo is a usage error.

Every command is run over gRPC (``--server host:port``) and REST (``--server
http://...``) alike. The REST figures and routes of ``dann`` depend on the export's
``predict_image`` and the server's b64 inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from support.helpers import models_copy
from tensorflow.core.protobuf import saved_model_pb2

from dann_client.contract import TWINS
from dann_client.preprocessing import layout_batch, load_images, to_model_input
from dann_serve.data import mnist
from dann_serve.serving.model_config import add_model_to_config
from harness.exports import copy_without_signatures
from harness.server_process import free_port

MNIST_IMAGES = ("mnist", "t10k-images-idx3-ubyte.gz")  # in ../shared/data
MNIST_COUNT = 300  # enough for several batches and all ten digits, still quick
ANSWER = {"predict_label": "label", "classify_domain": "domain"}


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(exported_model: Path, tmp_path_factory) -> Path:
    """A private copy of the export, plus ``old/1`` without ``predict_label``'s twins and
    ``legacy/1`` without them and ``classify_domain``."""
    root = models_copy(exported_model, tmp_path_factory.mktemp("e2e"))
    copy_without_signatures(exported_model, root / "old" / "1")
    removed = (*TWINS, "classify_domain")
    copy_without_signatures(exported_model, root / "legacy" / "1", removed)
    for name in ("old", "legacy"):
        add_model_to_config(root / "models.config", name)
    return root


@pytest.fixture(scope="module")
def server(model_dir: Path, start_server):
    running = start_server(model_dir)
    yield running
    assert running.stop(signal.SIGINT) == 0, running.log()


@pytest.fixture(scope="module")
def mnist_files(shared_data, tmp_path_factory) -> list[Path]:
    """The first MNIST test images from ../shared/data as 28x28 grey PNGs."""
    path = shared_data(*MNIST_IMAGES).joinpath(*MNIST_IMAGES)
    pixels = mnist.read_idx(path, mnist.IMAGES_MAGIC)[:MNIST_COUNT]
    directory = tmp_path_factory.mktemp("mnist")
    paths = []
    for index, image in enumerate(pixels):
        paths.append(directory / f"{index:05d}.png")
        Image.fromarray(image, mode="L").save(paths[-1])
    # The files carry the IDX pixels, and the client reads them back as the training
    # pipeline lays out the raw arrays, bit for bit.
    np.testing.assert_array_equal(load_images(paths)[0], layout_batch(pixels))
    return paths


@pytest.fixture(params=["tiny_target", "shared_mnist"])
def image_files(request) -> list[Path]:
    name = "tiny_files" if request.param == "tiny_target" else "mnist_files"
    return request.getfixturevalue(name)


# -- helpers ----------------------------------------------------------------------------


def records(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def expected(in_process, signature: str, paths: list[Path]) -> dict[str, np.ndarray]:
    """The SavedModel's outputs in this process for the same files, read the same way."""
    images, failures = load_images(paths)
    assert not failures
    outputs = in_process.signatures[signature](images=tf.constant(to_model_input(images)))
    return {name: value.numpy() for name, value in outputs.items()}


def assert_answers(
    got: list[dict], paths: list[Path], want: dict[str, np.ndarray], signature: str
) -> None:
    """Same files in the same order, the same answers exactly, probabilities to 6 places."""
    key = ANSWER[signature]
    assert [record["path"] for record in got] == [str(path) for path in paths]
    assert [record[key] for record in got] == want[key].tolist()
    probabilities = np.array([record["probabilities"] for record in got])
    np.testing.assert_allclose(probabilities, want["probabilities"], atol=1e-6)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- answers ----------------------------------------------------------------------------


def test_predict_labels_equal_the_in_process_model(dann_client, server, in_process, image_files):
    directory = os.path.commonpath(image_files)  # walked recursively, in sorted order
    result = dann_client(
        "predict", directory, "--json", "--batch-size", "64", "--server", server.grpc_address
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    want = expected(in_process, "predict_label", image_files)
    assert_answers(records(result), image_files, want, "predict_label")
    assert len(set(want["label"].tolist())) > 1  # a model that always says 7 proves little


def test_onnx_backend_gives_the_same_labels_without_a_server(
    dann_client, in_process, exported_model, image_files
):
    nobody = f"127.0.0.1:{free_port()}"  # would fail with exit 3 if it were asked
    for command, signature in (("predict", "predict_label"), ("domain", "classify_domain")):
        result = dann_client(
            command,
            *image_files,
            "--json",
            "--backend",
            "onnx",
            "--onnx",
            exported_model,
            "--server",
            nobody,
        )
        assert result.returncode == 0, result.stderr
        want = expected(in_process, signature, image_files)
        assert_answers(records(result), image_files, want, signature)


def test_domain_command_and_signature_option_equal_in_process(
    dann_client, server, in_process, tiny_files
):
    want = expected(in_process, "classify_domain", tiny_files)
    by_command = dann_client("domain", *tiny_files, "--json", "--server", server.grpc_address)
    by_option = dann_client(
        "predict",
        *tiny_files,
        "--json",
        "--signature",
        "classify_domain",
        "--server",
        server.grpc_address,
    )
    assert by_command.returncode == by_option.returncode == 0, by_command.stderr
    assert by_command.stdout == by_option.stdout
    got = records(by_command)
    assert_answers(got, tiny_files, want, "classify_domain")
    names = [record["domain_name"] for record in got]
    assert names == [("source", "target")[d] for d in want["domain"].tolist()]


def test_paths_from_stdin_and_text_output(dann_client, server, in_process, tiny_files):
    chosen = tiny_files[:3]
    result = dann_client(
        "predict",
        "-",
        "--server",
        server.grpc_address,
        stdin="".join(f"{path}\n" for path in chosen),
    )
    assert result.returncode == 0, result.stderr
    labels = expected(in_process, "predict_label", chosen)["label"].tolist()
    lines = result.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [str(path) for path in chosen]
    assert [int(line.split(": ", 1)[1].split()[0]) for line in lines] == labels


# -- exit status 1 and 2 ----------------------------------------------------------------


def test_a_corrupt_file_costs_one_line_and_others_are_answered(
    dann_client, server, in_process, tiny_files, tmp_path
):
    good = []
    for index, source in enumerate(tiny_files[:6]):
        good.append(tmp_path / f"{index}.png")
        shutil.copy(source, good[-1])
    broken = tmp_path / "3-broken.png"  # sorts among the good ones
    broken.write_bytes(tiny_files[0].read_bytes()[:40])  # a PNG cut short
    result = dann_client("predict", tmp_path, "--json", "--server", server.grpc_address)
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith(f"{broken}: ") and len(line) > len(f"{broken}: ")
    good = sorted(good)
    assert_answers(
        records(result), good, expected(in_process, "predict_label", good), "predict_label"
    )


USAGE_ERRORS = {
    "no inputs": ["predict"],
    "unknown option": ["predict", "{image}", "--bogus"],
    "unknown signature": ["predict", "{image}", "--signature", "nope"],
    "version zero": ["predict", "{image}", "--version", "0"],
    "version and label": ["predict", "{image}", "--version", "1", "--label", "stable"],
    "onnx without a file": ["predict", "{image}", "--backend", "onnx"],
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_errors_exit_2_before_any_answer(dann_client, server, tiny_files, case):
    args = [arg.format(image=tiny_files[0]) for arg in USAGE_ERRORS[case]]
    result = dann_client(*args, "--server", server.grpc_address)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Error" in result.stderr and "Traceback" not in result.stderr


# -- exit status 3 ----------------------------------------------------------------------


def test_server_down_exits_3_with_one_line_naming_the_address(dann_client, tiny_files):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    for command in (["predict", tiny_files[0]], ["status"], ["metadata"]):
        result = dann_client(*command, "--server", address, "--retries", "1")
        assert result.returncode == 3, result.stderr
        assert result.stdout == ""
        line = one_error_line(result)
        assert address in line and line.startswith("dann-client: ")


def test_a_deadline_too_short_for_the_real_server_exits_3(dann_client, server, tiny_files):
    result = dann_client(
        "predict", *tiny_files[:50], "--timeout", "0.000001", "--server", server.grpc_address
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    line = one_error_line(result)
    assert server.grpc_address in line and "did not answer within" in line


# -- exit status 4 ----------------------------------------------------------------------


REJECTIONS = {
    "unknown model": (["predict", "{image}", "--model", "nope"], "NOT_FOUND"),
    "unknown version": (["predict", "{image}", "--version", "99"], "NOT_FOUND"),
    "unknown signature": (["domain", "{image}", "--model", "legacy"], "FAILED_PRECONDITION"),
    "unknown label": (["predict", "{image}", "--label", "nope"], "INVALID_ARGUMENT"),
    "status of an unknown model": (["status", "--model", "nope"], "NOT_FOUND"),
    "metadata of an unknown version": (["metadata", "--version", "99"], "NOT_FOUND"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_requests_the_server_rejects_exit_4(dann_client, server, tiny_files, case):
    template, code = REJECTIONS[case]
    args = [arg.format(image=tiny_files[0]) for arg in template]
    result = dann_client(*args, "--server", server.grpc_address)
    assert result.returncode == 4, result.stderr
    assert result.stdout == ""
    line = one_error_line(result)
    assert f"rejected the request: {code}:" in line and server.grpc_address in line


def test_the_legacy_model_still_answers_labels(dann_client, server, in_process, tiny_files):
    """So the FAILED_PRECONDITION above is about the signature, not a broken model."""
    result = dann_client(
        "predict", *tiny_files[:5], "--json", "--model", "legacy", "--server", server.grpc_address
    )
    assert result.returncode == 0, result.stderr
    want = expected(in_process, "predict_label", tiny_files[:5])
    assert_answers(records(result), tiny_files[:5], want, "predict_label")


# -- status and metadata ----------------------------------------------------------------


def test_status_of_the_served_model(dann_client, server):
    as_json = dann_client("status", "--json", "--server", server.grpc_address)
    assert as_json.returncode == 0, as_json.stderr
    assert records(as_json) == [
        {
            "model": "dann",
            "version": 1,
            "state": "AVAILABLE",
            "error_code": "OK",
            "error_message": "",
        }
    ]
    as_text = dann_client("status", "--version", "1", "--server", server.grpc_address)
    assert (as_text.returncode, as_text.stdout) == (0, "dann version 1: AVAILABLE\n")


def test_metadata_is_the_exported_signatures(dann_client, server, exported_model):
    saved = saved_model_pb2.SavedModel.FromString((exported_model / "saved_model.pb").read_bytes())
    signature_defs = saved.meta_graphs[0].signature_def
    result = dann_client("metadata", "--json", "--server", server.grpc_address)
    assert result.returncode == 0, result.stderr
    found = {record["signature"]: record for record in records(result)}
    assert set(found) == set(signature_defs)
    assert {record["version"] for record in found.values()} == {1}
    for name in ("predict_label", "classify_domain", "serving_default"):
        record, definition = found[name], signature_defs[name]
        assert record["method"] == definition.method_name
        assert set(record["outputs"]) == set(definition.outputs)
        assert record["inputs"] == {"images": {"dtype": "DT_FLOAT", "shape": [-1, 32, 32, 3]}}
    assert found["predict_label"]["outputs"] == {
        "label": {"dtype": "DT_INT64", "shape": [-1]},
        "probabilities": {"dtype": "DT_FLOAT", "shape": [-1, 10]},
    }
    assert found["classify_domain"]["outputs"]["probabilities"]["shape"] == [-1, 2]

    legacy = dann_client("metadata", "--model", "legacy", "--server", server.grpc_address)
    assert legacy.returncode == 0, legacy.stderr
    assert "predict_label" in legacy.stdout and "classify_domain" not in legacy.stdout


# -- REST: every command over --server http://, and the encodings each export gets ------


# Batches of float32 JSON are capped at 62 images over REST (4 MiB at most), 64 over
# gRPC; the answers then agree to float32 rounding only (the test below), so the float32
# cases here ask for batches both protocols send alike, and agree to the last digit.
REST_COMMANDS = {
    "predict a folder": ["predict", "{folder}", "--json"],
    "predict csv, top-k": ["predict", "{folder}", "--format", "csv", "--top-k", "2"],
    "predict text, batches of 7": ["predict", "{folder}", "--batch-size", "7"],
    "predict an old export": [
        "predict",
        "{folder}",
        "--json",
        "--model",
        "old",
        "--batch-size",
        "50",
    ],
    "domain": ["domain", "{folder}", "--json", "--batch-size", "50"],
    "status": ["status", "--json"],
    "status of a version": ["status", "--version", "1"],
    "metadata": ["metadata", "--json"],
    "metadata of an old export": ["metadata", "--model", "old", "--format", "csv"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(REST_COMMANDS))
def test_every_command_over_rest_prints_what_grpc_prints(dann_client, server, tiny_files, case):
    folder = os.path.commonpath(tiny_files)
    args = [arg.format(folder=folder) for arg in REST_COMMANDS[case]]
    over_rest = dann_client(*args, "--server", server.rest_url)
    over_grpc = dann_client(*args, "--server", server.grpc_address)
    assert over_rest.returncode == 0, over_rest.stderr
    assert over_grpc.returncode == 0, over_grpc.stderr
    assert over_rest.stderr == over_grpc.stderr == ""
    assert over_rest.stdout == over_grpc.stdout
    assert over_rest.stdout


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dann", "old"])
@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_answers_equal_the_in_process_model_over_both_protocols(
    dann_client, server, in_process, image_files, model, protocol
):
    """The new export (uint8 over gRPC, PNGs over REST) and an export without
    ``predict_label``'s twins (float32 both ways) give the in-process model's answers."""
    address = server.rest_url if protocol == "rest" else server.grpc_address
    directory = os.path.commonpath(image_files)
    result = dann_client("predict", directory, "--json", "--model", model, "--server", address)
    assert result.returncode == 0, result.stderr
    want = expected(in_process, "predict_label", image_files)
    assert_answers(records(result), image_files, want, "predict_label")


def test_new_exports_take_uint8_over_grpc_and_pngs_over_rest(server):
    """Which signature and encoding each export gets (needs predict_image and
    predict_label_uint8 in the export)."""
    from dann_client.api import ModelRef
    from dann_client.remote import Route, Wire
    from dann_client.rest import RestTransport
    from dann_client.rest_service import RestBackend
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    with Transport(server.grpc_address) as grpc_transport, RestTransport(server.rest_url) as rest:
        for model, over_grpc, over_rest in (
            ("dann", Route("predict_label_uint8", Wire.UINT8), Route("predict_image", Wire.PNG)),
            ("old", Route("predict_label", Wire.FLOAT32), Route("predict_label", Wire.FLOAT32)),
        ):
            ref = ModelRef(model)
            assert GrpcBackend(grpc_transport, ref).route("predict_label") == over_grpc
            assert RestBackend(rest, ref).route("predict_label") == over_rest
            domain = Route("classify_domain", Wire.FLOAT32)
            assert RestBackend(rest, ref).route("classify_domain") == domain


def test_every_encoding_gives_the_same_answers(server, mnist_files):
    """uint8 and float32 over gRPC, PNGs, uint8 and float32 over REST: the same labels,
    the same probabilities (to float32 rounding), on 300 real MNIST digits."""
    from dann_client.predict import predict_files
    from dann_client.remote import Wire
    from dann_client.rest import RestTransport
    from dann_client.rest_service import RestBackend
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    answers = {}
    with Transport(server.grpc_address) as grpc_transport, RestTransport(server.rest_url) as rest:
        for name, backend in {
            "grpc uint8": GrpcBackend(grpc_transport, wires=(Wire.UINT8,)),
            "grpc float32": GrpcBackend(grpc_transport, wires=(Wire.FLOAT32,)),
            "rest png": RestBackend(rest, wires=(Wire.PNG,)),
            "rest uint8": RestBackend(rest, wires=(Wire.UINT8,)),
            "rest float32": RestBackend(rest, wires=(Wire.FLOAT32,)),
        }.items():
            results = list(predict_files(mnist_files, backend))
            answers[name] = (
                [r.index for r in results],
                np.array([r.probabilities for r in results]),
            )
    labels, probabilities = answers.pop("grpc float32")
    for name, (other_labels, other_probabilities) in answers.items():
        assert other_labels == labels, name
        np.testing.assert_allclose(other_probabilities, probabilities, atol=1e-6, err_msg=name)


REST_REJECTIONS = {
    "unknown model": (["predict", "{image}", "--model", "nope"], "HTTP 404"),
    "unknown version": (["predict", "{image}", "--version", "99"], "HTTP 404"),
    "unknown signature": (["domain", "{image}", "--model", "legacy"], "HTTP 400"),
    "unknown label": (["predict", "{image}", "--label", "nope"], "HTTP 400"),
    "status of an unknown model": (["status", "--model", "nope"], "HTTP 404"),
    "metadata of an unknown version": (["metadata", "--version", "99"], "HTTP 404"),
}


@pytest.mark.parametrize("case", list(REST_REJECTIONS))
def test_requests_the_server_rejects_over_rest_exit_4(dann_client, server, tiny_files, case):
    template, status = REST_REJECTIONS[case]
    args = [arg.format(image=tiny_files[0]) for arg in template]
    result = dann_client(*args, "--server", server.rest_url)
    assert result.returncode == 4, result.stderr
    assert result.stdout == ""
    line = one_error_line(result)
    assert line.startswith(
        f"dann-client: server {server.rest_url} rejected the request: {status}: "
    )


def test_dann_server_points_every_command_at_the_server(dann_client, server, tiny_files):
    """The environment variable alone, as a deployment sets it; gRPC and REST alike."""
    for address in (server.grpc_address, server.rest_url):
        env = {**os.environ, "DANN_SERVER": address}
        for args in (["predict", tiny_files[0]], ["domain", tiny_files[0]], ["status"]):
            result = subprocess.run(
                [*dann_client.command, *map(str, args)], capture_output=True, text=True, env=env
            )
            assert result.returncode == 0, (address, args, result.stderr)

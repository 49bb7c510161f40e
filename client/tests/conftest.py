"""Fixtures for the client's tests: tiny ONNX models, a toy gRPC server (plain and
TLS) and its REST front, a free local port. They stand alone: the client's tests run where only
``./client[test]`` is installed, without the repository's tests/ and harness/."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest
from toy_rest import ToyRest
from toy_serving import ToyServing, start_server


def pytest_configure(config: pytest.Config) -> None:
    """The ``slow`` marker the repository's pyproject.toml registers, for a run of these
    tests without it (``-m "not slow"`` leaves out the fresh-venv install)."""
    config.addinivalue_line("markers", "slow: installs packages or starts many processes")


@pytest.fixture(scope="module")
def _toy_server():
    servicer = ToyServing()
    server, port = start_server(servicer, "127.0.0.1:0")
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def toy_server(_toy_server) -> tuple[ToyServing, str]:
    """(servicer, address) of a running toy server, its knobs reset for each test."""
    servicer, address = _toy_server
    servicer.reset()
    return servicer, address


@pytest.fixture(scope="module")
def _toy_rest():
    rest = ToyRest(ToyServing())
    yield rest
    rest.close()


@pytest.fixture
def toy_rest(_toy_rest) -> ToyRest:
    """A running toy REST server (``.url``, ``.servicer``, ``.requests``), reset."""
    _toy_rest.reset()
    return _toy_rest


@pytest.fixture
def free_port() -> int:
    """A local port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> dict[str, Path]:
    """A self-signed certificate for localhost, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return {"key": key, "cert": cert}


@pytest.fixture(scope="module")
def tls_rest(tls_files):
    """A toy REST server that only speaks HTTPS, as ``localhost``."""
    rest = ToyRest(ToyServing(), tls=(tls_files["cert"], tls_files["key"]))
    yield rest
    rest.close()


@pytest.fixture(scope="module")
def tls_server(tls_files):
    """(servicer, address) of a toy server that only speaks TLS."""
    credentials = grpc.ssl_server_credentials(
        [(tls_files["key"].read_bytes(), tls_files["cert"].read_bytes())]
    )
    servicer = ToyServing()
    server, port = start_server(servicer, "localhost:0", credentials)
    yield servicer, f"localhost:{port}"
    server.stop(None)


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny ONNX models with the export's names: input ``images`` [-1, 32, 32, 3]
    float, outputs ``probabilities`` and ``label`` (or ``domain``), laid out as
    an export's ``onnx/`` directory. ``weights`` holds each model's matrix."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    directory = tmp_path_factory.mktemp("export") / "onnx"
    directory.mkdir()
    made: dict[str, Path] = {"dir": directory}
    for seed, (signature, answer, classes) in enumerate(
        [("predict_label", "label", 10), ("classify_domain", "domain", 2)]
    ):
        weights = np.random.default_rng(seed).normal(size=(32 * 32 * 3, classes))
        weights = weights.astype(np.float32)
        graph = helper.make_graph(
            [
                helper.make_node("Reshape", ["images", "flat_shape"], ["flat"]),
                helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
                helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
                helper.make_node("ArgMax", ["logits"], [answer], axis=1, keepdims=0),
            ],
            signature,
            [helper.make_tensor_value_info("images", TensorProto.FLOAT, [-1, 32, 32, 3])],
            [
                helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [-1, classes]),
                helper.make_tensor_value_info(answer, TensorProto.INT64, [-1]),
            ],
            initializer=[
                numpy_helper.from_array(np.array([-1, 32 * 32 * 3], np.int64), "flat_shape"),
                numpy_helper.from_array(weights, "weights"),
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        path = directory / f"{signature}.onnx"
        onnx.save(model, path)
        made[signature] = path
        made[f"{signature}_weights"] = weights
    return made

"""Shared fixtures: tiny real domains registered under their own names, so tests run
the real loaders, pipeline and training loop in seconds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from dann_serve import datasets
from dann_serve.datasets import Domain, Split
from dann_serve.datasets.digits import load_digits
from dann_serve.datasets.fonts import generate


@pytest.fixture(scope="session")
def tiny_source() -> Domain:
    return Domain("tiny-fonts", train=generate(256, seed=10), test=generate(100, seed=11))


@pytest.fixture(scope="session")
def tiny_target() -> Domain:
    digits = load_digits()
    return Domain(
        "tiny-digits",
        train=Split(digits.train.images[:256], digits.train.labels[:256]),
        test=Split(digits.test.images[:100], digits.test.labels[:100]),
    )


@pytest.fixture(scope="session")
def tiny_pair(tiny_source: Domain, tiny_target: Domain) -> Iterator[tuple[str, str]]:
    """Registers the tiny domains as data sets and returns their names."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(datasets.LOADERS, tiny_source.name, lambda _dir: tiny_source)
        patch.setitem(datasets.LOADERS, tiny_target.name, lambda _dir: tiny_target)
        yield tiny_source.name, tiny_target.name


@pytest.fixture(scope="session")
def trained_run(tiny_pair: tuple[str, str], tmp_path_factory) -> Path:
    """A short real DANN run on the tiny pair (shared, read-only for tests)."""
    from dann_serve.config import TrainConfig
    from dann_serve.training import train_run

    source, target = tiny_pair
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    config = TrainConfig(source=source, target=target, steps=60, batch_size=32,
                         eval_every=30, learning_rate=0.05)  # fmt: skip
    train_run(config, run_dir, show_progress=False)
    return run_dir


@pytest.fixture(scope="session")
def exported_model(trained_run: Path, tmp_path_factory) -> Path:
    """``trained_run`` exported as ``<model_dir>/dann/1`` (returns that version path).

    The model directory (its parent's parent) also holds ``models.config``.
    """
    from dann_serve.export import export_run

    model_dir = tmp_path_factory.mktemp("models")
    return export_run(trained_run, model_dir, "dann").path


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


class LocalServer:
    """A ``dann-serve serve`` subprocess on free ports, and how to reach and stop it."""

    def __init__(self, process: subprocess.Popen, model_dir: Path, port: int, rest_port: int,
                 log_path: Path) -> None:  # fmt: skip
        self.process = process
        self.model_dir = model_dir
        self.grpc_address = f"127.0.0.1:{port}"
        self.rest_url = f"http://127.0.0.1:{rest_port}"
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, signal_number: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``signal_number`` and return the exit code (killing it after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal_number)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def start_server(tmp_path_factory) -> Iterator:
    """Factory: ``start_server(model_dir, *options)`` runs ``dann-serve serve`` on free
    ports and returns a ``LocalServer`` once model ``dann`` answers AVAILABLE on REST.

    Every server still running at the end of the session is killed.
    """
    started: list[LocalServer] = []

    def start(model_dir: Path, *options: str, timeout: float = 120.0) -> LocalServer:
        port, rest_port = _free_port(), _free_port()
        log_path = tmp_path_factory.mktemp("server") / "serve.log"
        command = [
            *(sys.executable, "-m", "dann_serve.cli", "serve", "--model-dir", str(model_dir)),
            *("--port", str(port), "--rest-port", str(rest_port), *options),
        ]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
        server = LocalServer(process, model_dir, port, rest_port, log_path)
        started.append(server)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"dann-serve serve exited with {process.returncode}:\n{server.log()}")
            try:
                with urllib.request.urlopen(f"{server.rest_url}/v1/models/dann", timeout=2) as r:
                    if b"AVAILABLE" in r.read():
                        return server
            except OSError:
                pass
            time.sleep(0.3)
        server.stop()
        pytest.fail(f"dann-serve serve not ready after {timeout} s:\n{server.log()}")

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()

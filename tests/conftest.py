"""Shared fixtures: tiny real domains registered under their own names, so tests run
the real loaders, pipeline and training loop in seconds."""

from __future__ import annotations

import os
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
                         eval_every=30, learning_rate=0.01)  # fmt: skip
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



@pytest.fixture(scope="session")
def start_server(tmp_path_factory) -> Iterator:
    """Factory: ``start_server(model_dir, *options)`` runs ``dann-serve serve`` on free
    ports and returns its ``LocalServer`` once model ``dann`` answers AVAILABLE on REST.

    Every server still running at the end of the session is killed.
    """
    from dann_serve.server.process import LocalServer

    started: list[LocalServer] = []

    def start(model_dir: Path, *options: str, timeout: float = 120.0) -> LocalServer:
        log_path = tmp_path_factory.mktemp("server") / "serve.log"
        server = LocalServer(model_dir, log_path, *options)
        started.append(server)
        try:
            return server.wait_ready(timeout=timeout)
        except RuntimeError as error:
            pytest.fail(str(error))

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()

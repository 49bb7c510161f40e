"""Shared fixtures: tiny real domains registered under their own names, so tests run
the real loaders, pipeline and training loop in seconds; a trained run and its export;
``dann-serve serve`` processes and gRPC channels to them; the ``dann-client`` command;
a TLS certificate; the real data sets of ../shared/data; the folder tests' digit
images and decode cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from support import tiny_data
from support.helpers import models_copy

from dann_client import preprocessing
from dann_serve import data
from dann_serve.data import Domain, cache_files, load_domain


@pytest.fixture(scope="session")
def tiny_source() -> Domain:
    return tiny_data.tiny_source()


@pytest.fixture(scope="session")
def tiny_target() -> Domain:
    return tiny_data.tiny_target()


@pytest.fixture(scope="session")
def tiny_pair(tiny_source: Domain, tiny_target: Domain) -> Iterator[tuple[str, str]]:
    """Registers the tiny domains as data sets and returns their names."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(data.LOADERS, tiny_source.name, lambda _dir: tiny_source)
        patch.setitem(data.LOADERS, tiny_target.name, lambda _dir: tiny_target)
        yield tiny_source.name, tiny_target.name


@pytest.fixture(scope="session")
def trained_run(tiny_pair: tuple[str, str], tmp_path_factory) -> Path:
    """A short real DANN run on the tiny pair (shared, read-only for tests)."""
    from dann_serve.config import TrainConfig
    from dann_serve.training.loop import train_run

    source, target = tiny_pair
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    config = TrainConfig(
        source=source, target=target, steps=60, batch_size=32, eval_every=30, learning_rate=0.01
    )
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


@pytest.fixture(scope="session")
def variables_untracked_savedmodel(trained_run: Path, tmp_path_factory) -> Path:
    """``trained_run`` saved without ServingModule's tracking of its tf.Variables: the
    Keras 3 defect that ``tf.saved_model.load`` runs and TensorFlow Serving does not
    (shared, read-only for tests)."""
    import tensorflow as tf

    from dann_serve.export.signatures import ServingModule
    from dann_serve.training.evaluation import restore_model

    module = ServingModule(restore_model(trained_run))
    del module.tf_variables
    signatures = {name: getattr(module, name) for name in ("predict_label", "classify_domain")}
    path = tmp_path_factory.mktemp("untracked") / "1"
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


@pytest.fixture(scope="session")
def tiny_files(tiny_target: Domain, tmp_path_factory) -> list[Path]:
    """The tiny target domain's test images as 32x32 RGB PNG files, in sorted order in
    two subfolders of a folder that holds nothing else (shared, read-only for tests)."""
    from PIL import Image

    directory = tmp_path_factory.mktemp("tiny")
    paths = []
    for index, pixels in enumerate(tiny_target.test.images):
        path = directory / f"{index // 50}" / f"{index:04d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Grey 28x28 uint8 digits and their labels: the ``digits`` data set's training
    images without the 2-pixel black frame its MNIST layout adds (what
    ``support.image_folders`` writes folders of)."""
    domain = load_domain("digits")
    return domain.train.images[:, 2:30, 2:30, 0].copy(), domain.train.labels


@pytest.fixture(scope="session", autouse=True)
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Nothing the tests decode or render is kept in ~/.cache: the session has a cache
    folder of its own (child processes inherit it), and ``cache_dir`` one per test."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(cache_files.CACHE_DIR_VARIABLE, str(path))
        yield path


@pytest.fixture()
def homeless(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user with no home directory (a container's uid with no passwd entry): no
    $HOME, none of our folder variables, and ``Path.home()`` fails as it then does."""

    def no_home(cls):
        raise RuntimeError("Could not determine home directory.")

    for variable in ("HOME", "XDG_CACHE_HOME", "DANN_CACHE_DIR", "DANN_DATA_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(Path, "home", classmethod(no_home))


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own decode cache (never ~/.cache): a module whose tests read image
    folders uses it for every test (``pytest.mark.usefixtures("cache_dir")``)."""
    path = tmp_path / "decode-cache"
    monkeypatch.setenv(cache_files.CACHE_DIR_VARIABLE, str(path))
    return path


@pytest.fixture()
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the client's ``load_image`` is asked to decode, in order."""
    seen: list[Path] = []
    original = preprocessing.load_image

    def counting(path, **options):
        seen.append(Path(path))
        return original(path, **options)

    monkeypatch.setattr(preprocessing, "load_image", counting)
    return seen


@pytest.fixture(scope="session")
def start_server(tmp_path_factory) -> Iterator:
    """Factory: ``start_server(model_dir, *options)`` runs ``dann-serve serve`` on free
    ports and returns its ``LocalServer`` once model ``dann`` answers AVAILABLE on REST.

    Every server still running at the end of the session is killed.
    """
    from harness.server_process import LocalServer

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


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory) -> dict[str, Path]:
    """A self-signed certificate and key for ``localhost``, made by the ``openssl``
    command (the ``cryptography`` package is not a dependency)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return {"cert": cert, "key": key}


@pytest.fixture(scope="session")
def reliability_server(exported_model: Path, start_server, tmp_path_factory):
    """``dann-serve serve`` for the tests of hostile requests, files and addresses: a
    private copy of the export (the load test lands a new version in it), a 4 MiB
    message limit (its ``max_message_bytes``) so that an oversized request is cheap to
    build, and a poll every 0.5 s."""
    model_dir = models_copy(exported_model, tmp_path_factory.mktemp("reliability"))
    server = start_server(model_dir, "--poll-seconds", "0.5", "--max-message-mb", "4")
    server.max_message_bytes = 4 * 1024 * 1024
    return server


@pytest.fixture()
def served_registry(exported_model: Path, tmp_path: Path):
    """``exported_model`` served in process: a polled ``ModelRegistry`` over a private
    copy. Observers added during the test are forgotten after it."""
    from dann_serve.serving import observers
    from dann_serve.serving.registry import ModelRegistry

    model_dir = models_copy(exported_model, tmp_path)
    opened = ModelRegistry(model_dir)
    opened.poll()
    yield opened
    opened.stop()
    observers.remove_all()


@pytest.fixture(scope="session")
def in_process(exported_model: Path):
    """``exported_model`` loaded with ``tf.saved_model.load`` in this process: what a
    server's answers are compared with (shared, read-only for tests)."""
    import tensorflow as tf

    return tf.saved_model.load(str(exported_model))


@pytest.fixture(scope="module")
def channel(server) -> Iterator:
    """An insecure gRPC channel to the module's ``server`` fixture (a ``LocalServer``),
    with the message limits of ``dann-serve serve`` (``SERVER_MAX_MESSAGE_BYTES``)."""
    import grpc

    from dann_client.contract import SERVER_MAX_MESSAGE_BYTES

    options = [
        ("grpc.max_send_message_length", SERVER_MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", SERVER_MAX_MESSAGE_BYTES),
    ]
    with grpc.insecure_channel(server.grpc_address, options=options) as opened:
        yield opened


@pytest.fixture(scope="module")
def prediction(channel):
    """The official ``PredictionService`` stub on ``channel``."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


class DannClient:
    """The installed ``dann-client`` console script (``python -m dann_client`` where
    it is not installed), run as a user runs it."""

    def __init__(self) -> None:
        script = Path(sys.executable).with_name("dann-client")
        self.command = [str(script)] if script.exists() else [sys.executable, "-m", "dann_client"]

    def __call__(
        self, *args: str | Path, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """Run it with ``args``; its exit status and text output."""
        return subprocess.run(
            [*self.command, *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="session")
def dann_client() -> DannClient:
    """``dann_client(*args, stdin=None, timeout=120)`` runs the ``dann-client`` command;
    ``dann_client.command`` is the command line that starts it."""
    return DannClient()


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Callable[..., Path]:
    """``shared_data(*parts)``: the folder of real data sets beside the repository
    (../shared/data), once ``parts`` are seen in it; the test is skipped if not."""

    def folder(*parts: str) -> Path:
        wanted = SHARED_DATA.joinpath(*parts)
        if not wanted.exists():
            pytest.skip(f"{wanted} is absent")
        return SHARED_DATA

    return folder

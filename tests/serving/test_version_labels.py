"""Version labels (``stable``, ``canary``) as TensorFlow Serving has them: read from
``models.config``, resolved for Predict, GetModelMetadata and GetModelStatus on both
protocols, refused where they name a version that is not served, and moved by
``dann-serve promote`` under a running server, which switches without a restart.

The model directories hold the session's export as version 1 and a copy of it as
version 2: the two answer alike, so which version answered is read from the answers'
ModelSpec, the status, the metadata and the server's access log.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from support.helpers import models_copy, predict_request, rest
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2
from tensorflow_serving.config import model_server_config_pb2

from dann_serve.serving import service
from dann_serve.serving.model_config import write_config
from dann_serve.serving.registry import ConfigError, ModelRegistry, State
from dann_serve.serving.status import ServingError

PREDICT_GRPC = 'request="/tensorflow.serving.PredictionService/Predict"'


def two_versions(exported_model: Path, root: Path) -> Path:
    """A model directory under ``root`` with dann 1 (the export) and 2 (a copy)."""
    model_dir = models_copy(exported_model, root)
    shutil.copytree(model_dir / "dann" / "1", model_dir / "dann" / "2")
    return model_dir


def configure(model_dir: Path, versions: list[int], labels: dict[str, int]) -> None:
    """``models.config`` serving ``versions`` of dann, with ``labels``."""
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(
        name="dann", base_path="/models/dann", model_platform="tensorflow"
    )
    entry.model_version_policy.specific.versions.extend(versions)
    entry.version_labels.update(labels)
    write_config(model_dir / "models.config", config)


def spec(label: str) -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(name="dann", version_label=label)


@pytest.fixture()
def registry(exported_model: Path, tmp_path: Path):
    """An in-process registry over ``two_versions``; its config is the test's to write."""
    model_dir = two_versions(exported_model, tmp_path)
    configure(model_dir, [1, 2], {"stable": 1, "canary": 2})
    registry = ModelRegistry(model_dir)
    yield registry
    registry.stop()


# -- in process: the registry and the three calls -----------------------------------------


def test_a_label_chooses_the_version_of_each_call(registry):
    registry.poll()
    images = np.zeros((1, 32, 32, 3), np.float32)
    for label, version in [("stable", 1), ("canary", 2)]:
        request = predict_request(images, "predict_label")
        request.model_spec.version_label = label
        assert service.predict(registry, request).model_spec.version.value == version
        metadata = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=spec(label), metadata_field=["signature_def"]
        )
        assert service.model_metadata(registry, metadata).model_spec.version.value == version
        status = get_model_status_pb2.GetModelStatusRequest(model_spec=spec(label))
        answer = service.model_status(registry, status).model_version_status
        assert [entry.version for entry in answer] == [version]


def test_an_unknown_label_is_invalid_argument_as_tensorflow_serving_says(registry):
    registry.poll()
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec("nope"))
    with pytest.raises(ServingError) as refused:
        service.model_status(registry, request)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.http_status == 400
    assert refused.value.message == "Unrecognized servable version label: nope"


@pytest.mark.parametrize(
    ("versions", "labels"),
    [
        ([1, 2, 3], {"stable": 1, "canary": 4}),  # 4 is not exported
        ([1], {"stable": 1, "canary": 2}),  # 2 is exported, but the policy drops it
    ],
)
def test_a_label_on_a_version_not_served_refuses_the_whole_config(registry, versions, labels):
    """As TensorFlow Serving refuses it: what was served, labels included, stays; and
    nothing the config asks for is loaded (3 here), as the label rules it out at once."""
    registry.poll()
    shutil.copytree(registry.model_dir / "dann" / "1", registry.model_dir / "dann" / "3")
    configure(registry.model_dir, versions, labels)
    with pytest.raises(ConfigError, match=r"label to version \d of model dann, which is not"):
        registry.poll()
    assert registry.get("dann", label="canary").version == 2
    assert sorted(v for v, *_ in registry.status("dann")) == [1, 2]


def test_a_label_whose_version_fails_to_load_is_refused_once(registry, caplog):
    """The load is tried once (its failure is remembered until its files change), the
    config is refused at every poll, the versions served before stay served, and one
    the refused config loaded meanwhile (4) is let go, not reported AVAILABLE."""
    registry.poll()
    broken = registry.model_dir / "dann" / "3"
    shutil.copytree(registry.model_dir / "dann" / "1", broken)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    shutil.copytree(registry.model_dir / "dann" / "1", registry.model_dir / "dann" / "4")
    configure(registry.model_dir, [1, 2, 3, 4], {"stable": 1, "canary": 3})
    with caplog.at_level("ERROR", logger="dann_serve.serving"):
        for _ in range(2):
            with pytest.raises(ConfigError, match="version 3 of model dann"):
                registry.poll()
    assert caplog.text.count("cannot load dann version 3") == 1
    assert registry.get("dann", label="canary").version == 2
    assert registry.get("dann").version == 2
    states = {version: state for version, state, _ in registry.status("dann")}
    assert states[4] != State.AVAILABLE and states[2] == State.AVAILABLE


def test_a_label_moves_with_the_version_it_names_in_one_poll(registry):
    """A label may name a version the same config first asks to load: the server loads
    it, then switches both at once, so no request for the label finds it missing."""
    registry.poll()
    shutil.copytree(registry.model_dir / "dann" / "1", registry.model_dir / "dann" / "3")
    configure(registry.model_dir, [2, 3], {"stable": 2, "canary": 3})
    registry.poll()
    assert registry.get("dann", label="canary").version == 3
    assert registry.get("dann", label="stable").version == 2


def test_a_server_started_on_a_label_it_cannot_serve_does_not_start(registry):
    configure(registry.model_dir, [1], {"stable": 1, "canary": 4})
    with pytest.raises(ConfigError, match="version 4 of model dann"):
        registry.poll()
    assert registry.model_names() == []


# -- served: promote under a running server, the client by label on both protocols ---------


@pytest.fixture(scope="module")
def server(exported_model: Path, start_server, tmp_path_factory):
    """``dann-serve serve`` over ``two_versions``, ``stable`` at 1 and no ``canary`` yet,
    polling every 0.3 s, with an access log."""
    root = tmp_path_factory.mktemp("labels")
    model_dir = two_versions(exported_model, root)
    configure(model_dir, [1, 2], {"stable": 1})
    access_log = root / "access.log"
    running = start_server(model_dir, "--poll-seconds", "0.3", "--access-log", str(access_log))
    running.access_log = access_log
    yield running
    assert running.stop(signal.SIGINT) == 0, running.log()


def promote(server, version: int, label: str) -> None:
    """``dann-serve promote`` as a user runs it, then wait until the server serves it."""
    command = [sys.executable, "-m", "dann_serve", "promote", "--model-dir", server.model_dir]
    done = subprocess.run(
        [*map(str, command), "--version", str(version), "--label", label],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code, body = rest(server, f"/v1/models/dann/labels/{label}")
        if code == 200 and body["model_version_status"][0]["version"] == str(version):
            return
        time.sleep(0.2)
    pytest.fail(f"{label} never reached version {version}:\n{server.log()}")


def answered_by(server, dann_client, address: str, label: str, files: list[Path]) -> set[str]:
    """The versions that answered ``dann-client predict --label`` (by the access log),
    after checking that its status and metadata name the same one."""
    size = server.access_log.stat().st_size
    common = ["--server", address, "--label", label, "--json"]
    done = dann_client("predict", *files, *common)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(files)
    status = {
        json.loads(line)["version"] for line in dann_client("status", *common).stdout.splitlines()
    }
    metadata = {
        json.loads(line)["version"] for line in dann_client("metadata", *common).stdout.splitlines()
    }
    marker = PREDICT_GRPC if "//" not in address else f"/labels/{label}:predict"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with server.access_log.open() as log:
            log.seek(size)
            lines = [line for line in log if marker in line]
        if lines:
            break
        time.sleep(0.1)
    versions = {line.split(" version=")[1].split()[0] for line in lines}
    assert versions == set(map(str, status)) == set(map(str, metadata)), lines
    return versions


def test_promote_moves_a_label_under_a_running_server_and_back(server, dann_client, tiny_files):
    files = tiny_files[:3]
    pid = server.process.pid
    transports = [server.grpc_address, server.rest_url]
    for address in transports:
        refused = dann_client("predict", *files, "--server", address, "--label", "canary")
        assert refused.returncode == 4, refused.stderr
        assert "Unrecognized servable version label: canary" in refused.stderr
    promote(server, 2, "canary")
    for address in transports:
        assert answered_by(server, dann_client, address, "canary", files) == {"2"}
        assert answered_by(server, dann_client, address, "stable", files) == {"1"}
    promote(server, 2, "stable")
    assert answered_by(server, dann_client, server.grpc_address, "stable", files) == {"2"}
    promote(server, 1, "stable")  # the rollback
    for address in transports:
        assert answered_by(server, dann_client, address, "stable", files) == {"1"}
    assert server.process.pid == pid and server.process.poll() is None
    assert "Traceback" not in server.log(), server.log()

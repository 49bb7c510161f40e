"""What ``dann-serve serve`` tells about itself, and when it says it is ready.

The metrics page carries TensorFlow Serving's names (tests/deploy/test_serving_image.py
checks production enables the same path), requests are counted and access-logged the
same over gRPC and REST, log lines carry a time and a level, and the probe the
deployment uses (deploy/k8s readiness and startup, the image's HEALTHCHECK command)
fails while no version of the model is AVAILABLE, where ``GET /v1/models/<m>`` does not.
"""

from __future__ import annotations

import itertools
import logging
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.helpers import dockerfile_instruction, k8s_container, predict_request, rest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from dann_client.contract import PROMETHEUS_PATH
from dann_serve.serving import logs, monitoring

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
READY = "ready"  # served from the start; "dann", the model the deployment probes, is not


# -- in process ---------------------------------------------------------------------------


def test_tensorflow_serving_counters_keep_their_exact_names():
    """prometheus_client would print a counter as ``name_total``; TensorFlow Serving's
    exporter prints ``name``, and dashboards query that."""
    registry = CollectorRegistry()
    counter = monitoring.ExactCounter(":tensorflow:serving:request_count", "doc", ("a", "b"))
    registry.register(counter)
    counter.inc("x", "OK")
    counter.inc("x", "OK")
    lines = generate_latest(registry).decode().splitlines()
    assert "# TYPE :tensorflow:serving:request_count untyped" in lines
    assert ':tensorflow:serving:request_count{a="x",b="OK"} 2.0' in lines
    assert not any("_total" in line for line in lines)


def test_latency_buckets_are_tensorflow_servings():
    buckets = monitoring.LATENCY_BUCKETS_US
    assert len(buckets) == 33 and buckets[0] == 10
    assert all(abs(high / low - 1.8) < 1e-5 for low, high in itertools.pairwise(buckets))


@pytest.fixture()
def restored_logging():
    """configure_logging changes process-wide loggers: put them back afterwards."""
    names = ("", "tensorflow", logs.ACCESS_LOGGER)
    saved = [(logging.getLogger(n), logging.getLogger(n).handlers[:]) for n in names]
    states = [(logger.level, logger.propagate, logger.filters[:]) for logger, _ in saved]
    yield
    for (logger, handlers), (level, propagate, filters) in zip(saved, states, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.filters[:] = filters


@pytest.mark.usefixtures("restored_logging")
def test_log_lines_have_time_and_level_and_access_lines_stay_one_line(capsys):
    logs.configure_logging("-")
    logging.getLogger("dann_serve.serving").warning("something to see")
    call = monitoring.Call(monitoring.GRPC, "ipv4:127.0.0.1:1", "/x/Predict", bytes_in=7)
    call.model, call.status = 'evil"\nname', "NOT_FOUND"
    monitoring.finish(call)
    captured = capsys.readouterr()
    assert re.fullmatch(
        rf"{TIMESTAMP} WARNING dann_serve\.serving: something to see\n", captured.err
    )
    [line] = captured.out.splitlines()  # the newline a client sent stays escaped
    assert re.fullmatch(
        rf"{TIMESTAMP} proto=GRPC peer=ipv4:127\.0\.0\.1:1 request=\"/x/Predict\""
        r' model="evil\\"\\nname" version=- signature="" status=NOT_FOUND'
        r" bytes_in=7 bytes_out=0 ms=\d+\.\d{3}",
        line,
    ), line


@pytest.mark.usefixtures("restored_logging")
def test_an_access_log_that_cannot_be_opened_changes_nothing(tmp_path):
    before = logging.getLogger().handlers[:]
    with pytest.raises(OSError, match="cannot write the access log"):
        logs.configure_logging(str(tmp_path / "missing" / "access.log"))
    assert logging.getLogger().handlers == before


# -- against a server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(exported_model: Path, tmp_path_factory):
    """``dann-serve serve`` with an access log over two models: ``ready`` (a copy of the
    export) and ``dann``, listed in models.config but with an empty directory."""
    from harness.server_process import LocalServer

    root = tmp_path_factory.mktemp("observed")
    model_dir = root / "models"
    shutil.copytree(exported_model, model_dir / READY / "1")
    (model_dir / "dann").mkdir()
    entries = "".join(
        f'config {{ name: "{name}" base_path: "/models/{name}" model_platform: "tensorflow" }}\n'
        for name in (READY, "dann")
    )
    (model_dir / "models.config").write_text(f"model_config_list {{\n{entries}}}\n")
    access_log = root / "access.log"
    running = LocalServer(
        model_dir, root / "serve.log", "--poll-seconds", "0.5", "--access-log", str(access_log)
    )
    running.access_log = access_log
    try:
        running.wait_ready(model=READY)
    except RuntimeError as error:
        pytest.fail(str(error))
    yield running
    assert running.stop(signal.SIGINT) == 0, running.log()


def _get(server, path: str) -> int:
    try:
        with urllib.request.urlopen(server.rest_url + path, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _healthcheck(server) -> int:
    """The exit status of the image's HEALTHCHECK command, aimed at ``server``."""
    command = dockerfile_instruction("HEALTHCHECK")
    port = server.rest_url.rsplit(":", 1)[1]
    script = command[-1].replace("/127.0.0.1/8501", f"/127.0.0.1/{port}")
    assert script != command[-1], "the HEALTHCHECK no longer asks 127.0.0.1:8501"
    return subprocess.run([*command[:-1], script], timeout=10).returncode


def _wait_for(condition, what: str, server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout:g} s:\n{server.log()}"
        time.sleep(0.25)


def test_readiness_probe_fails_until_a_version_is_available(server, exported_model):
    container = k8s_container()
    [probe] = {container[kind]["httpGet"]["path"] for kind in ("readinessProbe", "startupProbe")}
    assert probe.startswith("/v1/models/dann"), probe
    model = server.model_dir / "dann"

    # No version on disk: the probe and the image's health check fail.
    assert _get(server, probe) == 404
    assert _healthcheck(server) != 0

    # A version whose load failed: the model's status answers 200 (what the probe used
    # to ask), but nothing is AVAILABLE and the probe still fails.
    (model / "1").mkdir()
    (model / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    _wait_for(lambda: "cannot load dann version 1" in server.log(), "the failed load", server)
    code, status = rest(server, "/v1/models/dann")
    assert code == 200 and status["model_version_status"][0]["state"] == "END"
    assert _get(server, probe) == 404
    assert _healthcheck(server) != 0

    # A good version lands (whole, by a rename): the probe passes once it is loaded.
    shutil.copytree(exported_model, model / ".staging-2")
    (model / ".staging-2").rename(model / "2")
    _wait_for(lambda: _get(server, probe) == 200, "readiness", server)
    code, status = rest(server, "/v1/models/dann/versions/2")
    assert code == 200 and status["model_version_status"][0]["state"] == "AVAILABLE"
    assert _healthcheck(server) == 0


def _scrape(server) -> dict[tuple[str, tuple], float]:
    """The metrics page: each sample's value by name and sorted labels."""
    with urllib.request.urlopen(server.rest_url + PROMETHEUS_PATH, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_by_model_signature_and_protocol(server, prediction):
    images = np.random.default_rng(3).random((2, 32, 32, 3), dtype=np.float32)
    unknown = f"nope-{uuid.uuid4().hex[:8]}"
    before = _scrape(server)
    prediction.Predict(predict_request(images, "predict_label", model=READY), timeout=30)
    with pytest.raises(grpc.RpcError):
        prediction.Predict(predict_request(images, "no_such", model=READY), timeout=30)
    body = {"signature_name": "classify_domain", "instances": images.tolist()}
    assert rest(server, f"/v1/models/{READY}:predict", body)[0] == 200
    assert rest(server, f"/v1/models/{unknown}:predict", body)[0] == 404
    after = _scrape(server)

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    count = ":tensorflow:serving:request_count"
    assert grew(count, model_name=READY, status="OK") == 2
    assert grew(count, model_name=READY, status="FAILED_PRECONDITION") == 1
    assert grew(count, model_name="", status="NOT_FOUND") == 1  # not a series per name
    latency = ":tensorflow:serving:request_latency_count"
    for entrypoint in ("GRPC", "REST"):
        assert grew(latency, model_name=READY, API="Predict", entrypoint=entrypoint) == 1
    requests = "dann_serve_requests_total"
    labels = {"model_name": READY, "API": "Predict", "status": "OK"}
    assert grew(requests, **labels, signature_name="predict_label", entrypoint="GRPC") == 1
    assert grew(requests, **labels, signature_name="classify_domain", entrypoint="REST") == 1
    assert not any(unknown in str(key) for key in after)

    path = str(server.model_dir / READY / "1")
    attempts = ":tensorflow:cc:saved_model:load_attempt_count"
    assert _sample(after, attempts, model_path=path, status="success") == 1
    assert _sample(after, ":tensorflow:cc:saved_model:load_latency", model_path=path) > 0
    warmups = ":tensorflow:serving:model_warmup_latency_count"
    assert _sample(after, warmups, model_path=path, status="OK") == 1
    state = "dann_serve_model_version_state"
    assert _sample(after, state, model_name=READY, version="1", state="AVAILABLE") == 1


def _access_lines(server, marker: str, count: int) -> list[str]:
    """The access-log lines holding ``marker``, once there are ``count`` of them (a REST
    line is written just after its answer leaves)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in server.access_log.read_text().splitlines() if marker in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_access_log_has_one_line_per_request_and_call(server, channel, prediction):
    marker = f"probe-{uuid.uuid4().hex[:8]}"
    assert rest(server, f"/v1/models/{marker}")[0] == 404
    status = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = marker
    with pytest.raises(grpc.RpcError):
        status.GetModelStatus(request, timeout=10)
    lines = _access_lines(server, marker, 2)
    # One line each; the REST one is written after its answer leaves, so on a busy
    # machine it may follow the gRPC one.
    [rest_line] = [line for line in lines if " proto=REST " in line]
    [grpc_line] = [line for line in lines if " proto=GRPC " in line]
    assert re.fullmatch(
        rf'{TIMESTAMP} proto=REST peer=127\.0\.0\.1:\d+ request="GET /v1/models/{marker}"'
        rf' model="{marker}" version=- signature="" status=404 bytes_in=0 bytes_out=\d+'
        r" ms=\d+\.\d{3}",
        rest_line,
    ), rest_line
    assert re.fullmatch(
        rf"{TIMESTAMP} proto=GRPC peer=ipv4:127\.0\.0\.1:\d+"
        rf' request="/tensorflow\.serving\.ModelService/GetModelStatus" model="{marker}"'
        r' version=- signature="" status=NOT_FOUND bytes_in=\d+ bytes_out=0 ms=\d+\.\d{3}',
        grpc_line,
    ), grpc_line

    images = np.zeros((1, 32, 32, 3), dtype=np.float32)
    request = predict_request(images, "predict_label", model=READY)
    request.model_spec.version.value = 1
    prediction.Predict(request, timeout=30)
    predict_line = _access_lines(server, "PredictionService/Predict", 1)[-1]
    assert f'model="{READY}" version=1 signature="predict_label" status=OK' in predict_line
    assert re.search(rf"bytes_in={request.ByteSize()} bytes_out=[1-9]", predict_line)


def test_server_log_lines_have_time_and_level(server):
    lines = server.log().splitlines()
    serving = [line for line in lines if f"serving {READY} version 1" in line]
    assert serving and re.match(rf"{TIMESTAMP} INFO dann_serve\.serving: ", serving[0])

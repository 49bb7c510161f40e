"""The live monitor of a real ``dann-serve serve``: its JSON and metrics shapes, the
figures they carry against the answers the server gave, a version exported without a
reference, shifted traffic flagged with one log line, and ``dann-client monitor``'s
text and ``--json`` output."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from support.helpers import models_copy, outputs, predict_request, rest

from dann_client.contract import PROMETHEUS_PATH
from dann_serve.drift import reference

WINDOW = 200
CONTRACT_KEYS = {
    "images",
    "mean_confidence",
    "class_shares",
    "estimated_accuracy",
    "estimate_reliable",
    "drift",
}


@pytest.fixture(scope="module")
def server(exported_model: Path, start_server, tmp_path_factory):
    """Three models: ``dann`` (the export), ``watch`` (a copy, for the drift test's own
    window) and ``plain`` (a copy without its reference, as an export whose data could
    not be read leaves it)."""
    from dann_serve.serving.model_config import CONFIG_FILE, add_model_to_config

    model_dir = models_copy(exported_model, tmp_path_factory.mktemp("monitored"))
    for name in ("watch", "plain"):
        shutil.copytree(exported_model, model_dir / name / "1")
        add_model_to_config(model_dir / CONFIG_FILE, name)
    (model_dir / "plain" / "1" / reference.VERSION_PATH).unlink()
    return start_server(model_dir, "--monitor-window", str(WINDOW))


def figures(server, path: str, images: int) -> dict:
    """The monitor's answer at ``path`` once its window holds ``images`` (the worker
    moves answers into windows off the request path, within moments)."""
    deadline = time.monotonic() + 20
    while True:
        code, body = rest(server, path)
        assert code == 200, body
        found = body["versions"][0] if "versions" in body else body
        if found["images"] >= images or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def send(prediction, server, model: str, pixels: np.ndarray) -> np.ndarray:
    """Half the images over gRPC, half over REST, to ``predict_label_uint8``; and all
    to ``classify_domain``, which the monitor must not count. The probabilities."""
    half = len(pixels) // 2
    grpc_request = predict_request(pixels[:half], "predict_label_uint8", model=model)
    answered = [outputs(prediction.Predict(grpc_request, timeout=30))["probabilities"]]
    body = {"signature_name": "predict_label_uint8", "inputs": pixels[half:].tolist()}
    code, payload = rest(server, f"/v1/models/{model}:predict", body)
    assert code == 200, payload
    answered.append(np.asarray(payload["outputs"]["probabilities"], np.float32))
    domain = predict_request(pixels.astype(np.float32) / 255, "classify_domain", model=model)
    prediction.Predict(domain, timeout=30)
    return np.concatenate(answered)


def metric_samples(server) -> list[tuple[str, dict[str, str], float]]:
    """Every ``dann_serve_monitor_*`` sample of the metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(server.rest_url + PROMETHEUS_PATH, timeout=10) as response:
        text = response.read().decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("dann_serve_monitor_")
    ]


def test_the_monitor_reports_what_the_server_answered(server, prediction, tiny_target):
    answered = send(prediction, server, "dann", tiny_target.test.images[:80])
    found = figures(server, "/v1/models/dann/versions/1/monitor", 80)
    assert set(found) >= CONTRACT_KEYS
    assert (found["model"], found["version"], found["images"]) == ("dann", 1, 80)
    assert (found["window"], found["reference"], found["dropped"]) == (WINDOW, True, 0)
    shares = np.bincount(answered.argmax(axis=1), minlength=10) / 80
    np.testing.assert_allclose(found["class_shares"], shares, atol=1e-9)
    assert found["mean_confidence"] == pytest.approx(answered.max(axis=1).mean(), abs=1e-6)
    assert 0 <= found["estimated_accuracy"] <= 1
    assert found["estimate_reliable"] is False  # 80 images are too few to trust it
    assert "too_few_images" in found["unreliable_because"]
    assert 0 <= found["drift"]["p_value"] <= 1 and isinstance(found["drift"]["shifted"], bool)

    every = figures(server, "/v1/models/dann/monitor", 80)
    assert every["model"] == "dann" and [v["version"] for v in every["versions"]] == [1]
    assert every["versions"][0]["class_shares"] == found["class_shares"]
    assert rest(server, "/v1/models/dann/versions/7/monitor")[0] == 404
    assert rest(server, "/v1/models/nope/monitor")[0] == 404

    samples = metric_samples(server)
    assert samples and all(set(labels) == {"model_name", "version"} for _, labels, _ in samples)
    mine = {name: value for name, labels, value in samples if labels["model_name"] == "dann"}
    assert mine["dann_serve_monitor_images"] == 80
    assert mine["dann_serve_monitor_mean_confidence"] == pytest.approx(found["mean_confidence"])
    assert mine["dann_serve_monitor_estimate_reliable"] == 0
    assert [mine[f"dann_serve_monitor_class_share_{d}"] for d in range(10)] == pytest.approx(
        found["class_shares"]
    )
    for name in ("estimated_accuracy", "drift_p_value", "drift_shifted"):
        assert f"dann_serve_monitor_{name}" in mine


def test_a_version_without_a_reference_reports_no_estimate_and_no_drift(
    server, prediction, tiny_target
):
    send(prediction, server, "plain", tiny_target.test.images[:30])
    found = figures(server, "/v1/models/plain/versions/1/monitor", 30)
    assert (found["images"], found["reference"]) == (30, False)
    assert found["estimated_accuracy"] is None and found["estimate_reliable"] is False
    assert found["unreliable_because"] == ["no_reference"]
    assert found["drift"] == {"p_value": None, "shifted": False}
    assert "plain version 1 has no assets.extra/monitor_reference.json" in server.log()
    mine = {n for n, labels, _ in metric_samples(server) if labels["model_name"] == "plain"}
    assert "dann_serve_monitor_images" in mine
    assert "dann_serve_monitor_estimated_accuracy" not in mine  # unknown: no sample
    assert "dann_serve_monitor_drift_p_value" not in mine


def test_shifted_traffic_is_flagged_and_logged_once(server, prediction):
    noise = np.random.default_rng(5).integers(0, 256, (WINDOW, 32, 32, 3), dtype=np.uint8)
    for start in range(0, WINDOW, 50):
        send(prediction, server, "watch", noise[start : start + 50])
    found = figures(server, "/v1/models/watch/versions/1/monitor", WINDOW)
    assert found["drift"]["shifted"] is True and found["drift"]["p_value"] < 0.002
    line = re.compile(r"monitor: watch version 1 is SHIFTED from its reference")
    deadline = time.monotonic() + 10
    while not line.search(server.log()) and time.monotonic() < deadline:
        time.sleep(0.2)
    send(prediction, server, "watch", noise[:50])  # more of it: reviewed again
    time.sleep(2.5)  # two more reviews, at one a second
    assert len(line.findall(server.log())) == 1, server.log()


def test_the_client_prints_the_monitor_as_a_table_and_as_json(server, dann_client, prediction):
    path = "/v1/models/dann/versions/1/monitor"
    before = figures(server, path, 0)["images"]
    send(prediction, server, "dann", np.zeros((10, 32, 32, 3), np.uint8))
    images = figures(server, path, before + 10)["images"]
    done = dann_client("monitor", "--server", server.rest_url, "--json")
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    shown = json.loads(line)
    assert shown["version"] == 1 and shown["images"] == images

    path = "/v1/models/plain/versions/1/monitor"
    before = figures(server, path, 0)["images"]
    send(prediction, server, "plain", np.zeros((10, 32, 32, 3), np.uint8))
    images = figures(server, path, before + 10)["images"]
    done = dann_client("monitor", "--server", server.rest_url, "--model", "plain")
    assert done.returncode == 0, done.stderr
    model, header, row, shares, reasons = done.stdout.splitlines()
    assert model == "model plain" and header.split()[:3] == ["version", "images", "window"]
    assert row.split()[:3] == ["1", str(images), str(WINDOW)]
    assert row.split()[4] == "-"  # no estimate without a reference
    assert shares.startswith("version 1 class shares  0:")
    assert reasons == "version 1 estimate unreliable: no_reference"

    done = dann_client("monitor", "--server", server.grpc_address)
    assert done.returncode == 2 and "gRPC API has no monitor call" in done.stderr
    done = dann_client("monitor", "--server", server.rest_url, "--version", "9")
    assert done.returncode == 4 and done.stderr.count("\n") == 1


def test_no_monitor_turns_it_off(exported_model: Path, start_server):
    quiet = start_server(exported_model.parent.parent, "--no-monitor")
    try:
        code, body = rest(quiet, "/v1/models/dann/monitor")
        assert code == 400 and "the monitor is off" in body["error"]
        assert metric_samples(quiet) == []
    finally:
        quiet.stop()

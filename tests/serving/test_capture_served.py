"""A server run with ``--capture-dir`` keeps what it answers on both protocols, as files
a folder reader takes back; a capture folder it cannot make stops it with one line."""

from __future__ import annotations

import stat
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.captured import captured_files, off_centre_digits, random_pixels, wait_for
from support.helpers import models_copy


@pytest.fixture()
def capturing_server(exported_model: Path, start_server, tmp_path):
    """``dann-serve serve --capture-dir`` keeping every image, and its capture folder."""
    model_dir = models_copy(exported_model, tmp_path)
    folder = tmp_path / "capture"
    server = start_server(model_dir, "--capture-dir", str(folder), "--capture-rate", "1")
    yield server, folder
    assert server.stop() == 0, server.log()


def test_a_server_captures_what_it_answers_on_both_protocols(capturing_server, monkeypatch):
    import base64

    import grpc
    from support.helpers import predict_request, rest
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from dann_client.preprocessing import encode_png
    from dann_serve.data.folders import load_folder

    server, folder = capturing_server
    pixels = np.concatenate([off_centre_digits(2), random_pixels(2)])
    sent_file = encode_png(pixels[0])
    body = {
        "signature_name": "predict_image",
        "instances": [{"b64": base64.b64encode(sent_file).decode()}],
    }
    assert rest(server, "/v1/models/dann:predict", body)[0] == 200
    as_float = pixels[1:].astype(np.float32) / np.float32(255)
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(predict_request(as_float, "predict_label"), timeout=30)
        stub.Predict(predict_request(as_float, "classify_domain"), timeout=30)
    version = folder / "dann" / "1"
    wait_for(lambda: len(captured_files(folder)) >= 4)
    time.sleep(0.5)  # classify_domain's images would have come by now: none may
    files = captured_files(folder)
    assert len(files) == 4 and all(path.parent == version for path in files)
    assert sum(path.read_bytes() == sent_file for path in files) == 1
    for path in files:
        assert path.suffix == ".png" and stat.S_IMODE(path.stat().st_mode) == 0o600
        with Image.open(path) as image:
            assert (image.format, image.size) == ("PNG", (32, 32))
    for level in (folder, folder / "dann", version):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700
    monkeypatch.setenv("DANN_CACHE_DIR", str(folder.parent / "cache"))
    target = load_folder(version, role="target")
    assert sorted(map(bytes, target.train.images)) == sorted(map(bytes, pixels))
    metrics = urllib.request.urlopen(f"{server.rest_url}/monitoring/prometheus/metrics").read()
    assert b'dann_serve_capture_images_total{model_name="dann",version="1"} 4.0' in metrics


def test_a_capture_folder_that_cannot_be_made_stops_the_server_with_one_line(
    exported_model: Path, tmp_path
):
    import subprocess
    import sys

    (tmp_path / "file").write_text("")
    command = [
        sys.executable,
        "-m",
        "dann_serve",
        "serve",
        "--model-dir",
        str(exported_model.parent.parent),
    ]
    command += ["--port", "0", "--rest-port", "0", "--capture-dir", str(tmp_path / "file" / "sub")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "--capture-dir" in last and "cannot create it: Not a directory" in last, result.stderr
    assert "Traceback" not in result.stderr

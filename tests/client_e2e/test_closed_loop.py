"""The whole loop a user runs when a served model's inputs move, end to end with tiny
steps: a real ``dann-serve serve`` answers shifted traffic sent by ``dann-client``, its
monitor says shifted, it captures the images, ``dann-serve adapt`` adapts the model's
run to the capture folder, ``export`` makes the result the next version, ``promote``
points ``canary`` at it, and ``dann-client predict --label canary`` is answered by it.

The shifted traffic is the tiny target's digits blended onto colour photographs (the
``digits-texture`` recipe), made offline from embedded data. ``adapt``, ``export`` and
``promote`` run in this process through the command line, so that they see the tiny
data sets the run was trained on; the server and the client are processes of their own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.helpers import models_copy
from tensorflow_serving.config import model_server_config_pb2

from dann_client.preprocessing import save_image
from dann_serve.cli import main
from dann_serve.config import CAPTURE_MANIFEST
from dann_serve.data import Domain
from dann_serve.data.texture import texture_variant
from dann_serve.serving.model_config import CONFIG_FILE, write_config

pytestmark = pytest.mark.slow

WINDOW = 200  # the monitor's window: the shifted images sent, all captured
CANARY_IMAGES = 20


@pytest.fixture(scope="module")
def shifted_files(tiny_target: Domain, tmp_path_factory) -> Path:
    """A folder of the tiny target's training digits on colour photographs, as PNG."""
    folder = tmp_path_factory.mktemp("shifted")
    for index, image in enumerate(texture_variant(tiny_target).train.images[:WINDOW]):
        save_image(image, folder / f"{index:04d}.png")
    return folder


@pytest.fixture(scope="module")
def model_dir(exported_model: Path, tmp_path_factory) -> Path:
    """A private copy of the export as ``dann`` version 1, labelled ``stable``, under a
    policy that serves the two newest versions: the next one is served beside it."""
    root = models_copy(exported_model, tmp_path_factory.mktemp("loop"))
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(
        name="dann", base_path="/models/dann", model_platform="tensorflow"
    )
    entry.model_version_policy.latest.num_versions = 2
    entry.version_labels["stable"] = 1
    write_config(root / CONFIG_FILE, config)
    return root


def cli(*args: str | Path) -> str:
    """``dann-serve *args`` in this process; its output, after checking it succeeded."""
    done = CliRunner().invoke(main, [str(arg) for arg in args])
    assert done.exit_code == 0, done.output
    return done.output


def monitor(dann_client, server, version: int, images: int) -> dict:
    """``dann-client monitor --json`` of ``version`` once its window holds ``images``."""
    deadline = time.monotonic() + 30
    while True:
        done = dann_client(
            "monitor", "--server", server.rest_url, "--version", str(version), "--json"
        )
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        if found["images"] >= images or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def wait_for(condition, what: str, server, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen in {seconds:.0f} s:\n{server.log()}")
        time.sleep(0.2)


def answered_versions(access_log: Path, since: int) -> set[str]:
    """The versions named by the Predict calls of the access log after byte ``since``."""
    with access_log.open() as log:
        log.seek(since)
        lines = [line for line in log if "PredictionService/Predict" in line]
    return {line.split(" version=")[1].split()[0] for line in lines}


def test_shifted_traffic_is_flagged_captured_adapted_and_served_as_the_canary(
    trained_run: Path, model_dir: Path, shifted_files: Path, start_server, dann_client, tmp_path
):
    captured, access_log = tmp_path / "captured", tmp_path / "access.log"
    server = start_server(
        model_dir,
        *("--monitor-window", str(WINDOW), "--poll-seconds", "0.5"),
        *("--capture-dir", str(captured), "--capture-rate", "1"),
        *("--access-log", str(access_log)),
    )
    sent = dann_client(
        "predict", shifted_files, "--server", server.grpc_address, "--label", "stable", "--json"
    )
    assert sent.returncode == 0, sent.stderr
    assert len(sent.stdout.splitlines()) == WINDOW

    # The monitor of the version that answered says the traffic moved.
    watched = monitor(dann_client, server, 1, WINDOW)
    assert watched["images"] == WINDOW and watched["drift"]["shifted"] is True, watched

    # Every image was kept, as a folder adapt reads, that names the version it served.
    version_folder = captured / "dann" / "1"
    wait_for(lambda: len(list(version_folder.glob("*.png"))) == WINDOW, "capture", server)
    assert json.loads((version_folder / CAPTURE_MANIFEST).read_text()) == {
        "model": "dann",
        "version": 1,
    }

    adapted = tmp_path / "adapted"
    cli("adapt", trained_run, "--target", version_folder, "--out", adapted, "--steps", "10")
    lineage = json.loads((adapted / "config.json").read_text())["lineage"]
    assert (lineage["parent_version"], lineage["target"]) == (1, str(version_folder.resolve()))

    cli("export", adapted, "--model-dir", model_dir)  # the next version: 2
    exported = json.loads((model_dir / "dann" / "2" / "export.json").read_text())
    assert exported["lineage"]["parent_version"] == 1
    cli("promote", "--model-dir", model_dir, "--version", "2", "--label", "canary")

    def canary_is_two() -> bool:
        done = dann_client("status", "--server", server.rest_url, "--label", "canary", "--json")
        return done.returncode == 0 and json.loads(done.stdout)["version"] == 2

    wait_for(canary_is_two, "canary -> version 2 at the server's poll", server)
    since = access_log.stat().st_size
    files = sorted(shifted_files.glob("*.png"))[:CANARY_IMAGES]
    asked = dann_client("predict", *files, "--server", server.grpc_address, "--label", "canary")
    assert asked.returncode == 0, asked.stderr
    assert len(asked.stdout.splitlines()) == CANARY_IMAGES
    wait_for(lambda: answered_versions(access_log, since), "the access log's line", server)
    assert answered_versions(access_log, since) == {"2"}
    assert monitor(dann_client, server, 2, CANARY_IMAGES)["images"] == CANARY_IMAGES
    assert "Traceback" not in server.log(), server.log()

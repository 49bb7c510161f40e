"""``dann-serve export`` killed with SIGKILL midway leaves no version directory a server
would load: the export builds under ``.staging-<version>-<pid>`` and renames into place
only at the end. (A failure raised inside the export is test_export.py's.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from support import tiny_data
from support.helpers import models_copy

from dann_serve.export.publish import remove_abandoned_staging

# Files that appear in the staging directory as the export goes: killed as soon as
# one shows, the export is inside the SavedModel write, the warm-up records or the
# ONNX conversion.
SEED = 20261130
STAGES = [
    "variables",
    "saved_model.pb",
    "assets.extra/tf_serving_warmup_requests",
    "onnx/predict_label.onnx",
    "onnx/classify_domain.onnx",
]


def _versions(model_root: Path) -> list[str]:
    return sorted(entry.name for entry in model_root.iterdir() if entry.name.isdigit())


def _kill_export_at(run: Path, model_dir: Path, stage: str, log: Path) -> Path:
    """Start ``dann-serve export``, SIGKILL it once ``stage`` exists in its staging
    directory; the staging directory it leaves."""
    export = tiny_data.start_cli("export", str(run), "--model-dir", str(model_dir), log=log)
    deadline = time.monotonic() + 180
    try:
        while True:
            staging = list((model_dir / "dann").glob(f".staging-*-{export.pid}"))
            if staging and (staging[0] / stage).exists():
                break
            assert export.poll() is None, f"export ended before {stage}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no {stage} after 180 s:\n{log.read_text()}"
            time.sleep(0.005)
    finally:
        export.send_signal(signal.SIGKILL)
        export.wait()
    return staging[0]


@pytest.mark.slow
def test_an_export_killed_midway_leaves_nothing_a_server_loads(
    trained_run, exported_model, start_server, tmp_path
):
    model_dir = models_copy(exported_model, tmp_path)
    model_root = model_dir / "dann"
    config_before = (model_dir / "models.config").read_text()
    # One early and one late stage, drawn from a fixed seed so a failure can be replayed.
    draw = random.Random(SEED)
    stages = draw.sample(STAGES[:2], 1) + draw.sample(STAGES[2:], 1)

    left = []
    for index, stage in enumerate(stages):
        left.append(_kill_export_at(trained_run, model_dir, stage, tmp_path / f"{index}.log"))
        assert _versions(model_root) == ["1"], f"seed {SEED}: killed at {stage}"
        assert left[-1].name.startswith(".staging-2-"), left[-1]
    assert (model_dir / "models.config").read_text() == config_before
    # The second export cleared the first one's leftover as it started (its process
    # was gone); the second's own is still there for the server to ignore.
    assert not left[0].exists() and left[1].is_dir()

    server = start_server(model_dir, "--poll-seconds", "0.5")
    time.sleep(1.5)  # three polls over the leftovers
    with_status = server.log()
    assert "cannot load" not in with_status and "staging" not in with_status, with_status
    assert with_status.count("serving dann version") == 1
    with urllib.request.urlopen(f"{server.rest_url}/v1/models/dann", timeout=10) as answer:
        status = json.loads(answer.read())["model_version_status"]
    assert [(entry["version"], entry["state"]) for entry in status] == [("1", "AVAILABLE")]
    assert server.stop() == 0

    # As the next export will, clear what the killed one left.
    assert remove_abandoned_staging(model_root) == [left[1]]
    assert not any(entry.name.startswith(".staging-") for entry in model_root.iterdir())


def test_staging_of_a_running_export_is_not_removed(tmp_path):
    mine = tmp_path / f".staging-3-{os.getpid()}"
    parent = tmp_path / f".staging-4-{os.getppid()}"  # alive: the process that ran pytest
    retired = tmp_path / ".retired-2-999999999"  # may hold the only copy of a version
    for directory in (mine, parent, retired):
        directory.mkdir()
    assert remove_abandoned_staging(tmp_path) == []
    assert mine.is_dir() and parent.is_dir() and retired.is_dir()

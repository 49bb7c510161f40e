"""Every export writes the live monitor's reference: the model's outputs on the target
images the run adapted to, ATC's threshold fitted on the source's held-out labelled
images; a run whose data cannot be read is exported all the same, without one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from dann_client.preprocessing import to_model_input
from dann_serve.drift import estimate, reference


def probabilities(saved, pixels: np.ndarray) -> np.ndarray:
    return saved.signatures["predict_label"](images=to_model_input(pixels))["probabilities"].numpy()


def test_the_reference_holds_the_target_outputs_and_the_source_fit(
    exported_model: Path, in_process, tiny_source, tiny_target
):
    loaded = reference.load(exported_model / reference.VERSION_PATH)
    # the tiny target's 256 training images, fewer than the bound: every one, in order
    target = probabilities(in_process, tiny_target.train.images)
    np.testing.assert_allclose(loaded.probabilities, target, atol=1e-6)
    source = probabilities(in_process, tiny_source.test.images)
    correct = source.argmax(axis=1) == tiny_source.test.labels
    assert loaded.source_images == len(tiny_source.test) == 100
    assert loaded.source_accuracy == pytest.approx(correct.mean())
    fitted = estimate.fit_threshold(estimate.scores(source, loaded.score), correct)
    assert loaded.threshold == pytest.approx(fitted, abs=1e-5)

    entry = json.loads((exported_model / "export.json").read_text())["monitor_reference"]
    assert entry["file"] == "assets.extra/monitor_reference.json"
    assert (entry["target_images"], entry["target_training_images"]) == (256, 256)
    assert (entry["source_images"], entry["seed"]) == (100, 0)


def test_a_run_whose_source_cannot_be_read_is_exported_without_a_reference(
    trained_run: Path, tiny_pair, tmp_path: Path, monkeypatch, caplog
):
    from dann_serve import data
    from dann_serve.export import export_run

    def absent(_data_dir):
        raise data.DatasetError(f"{tiny_pair[0]}: its files are not on this machine")

    monkeypatch.setitem(data.LOADERS, tiny_pair[0], absent)
    caplog.set_level(logging.WARNING, logger="dann_serve.export")
    result = export_run(trained_run, tmp_path / "models", "dann")
    assert (result.path / "saved_model.pb").is_file()
    assert not (result.path / reference.VERSION_PATH).exists()
    skipped = f"{tiny_pair[0]}: its files are not on this machine"
    assert result.report["monitor_reference"] == {"file": None, "skipped": skipped}
    [line] = [r.getMessage() for r in caplog.records if r.name == "dann_serve.export"]
    assert line.startswith(f"no monitor reference: {skipped}")

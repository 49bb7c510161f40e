"""Exporting a run trained on folders: the export reads the run's test images and nothing
else of the training folder, so files added to it or broken since training change
nothing, and its parity checks run on the images the run was tested on.

The images are real PNG files written by ``image_folders``; runs and exports are real
``dann-serve`` commands, in process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.image_folders import (
    TINY,
    break_file,
    dann_serve,
    held_out,
    labelled_folder,
    run_record,
    unlabelled_folder,
)

from dann_serve.data import DatasetError, load_domain, load_test_split
from dann_serve.data.decode_cache import DecodeCache
from dann_serve.data.folders import read_files, read_folder
from dann_serve.export.checks import PARITY_IMAGES

# Each test decodes into a cache of its own (the ``cache_dir`` fixture), never ~/.cache.
pytestmark = pytest.mark.usefixtures("cache_dir")


def _joins_the_held_out_part(folder: Path, digit: int) -> Path:
    """A new file of class ``digit`` whose path the 1-in-10 hash would hold out: were
    the split made again from the folder as it is now, it would be a test image."""
    names = (f"{digit}/added-{n}.png" for n in range(1000))
    return folder / next(name for name in names if held_out([name]))


def _train(source: Path, target: Path, run: Path, *options: str | Path) -> dict:
    result = dann_serve(
        "train", "--source", source, "--target", target, *options, *TINY, "--out", run
    )
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return run_record(run)


def _exported(run: Path, models: Path) -> dict:
    result = dann_serve("export", run, "--model-dir", models)
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return json.loads((models / "dann" / "1" / "export.json").read_text())


@pytest.mark.slow
def test_a_run_on_a_folder_exports_after_the_folder_gained_and_broke_files(
    digits, tmp_path: Path, decodes: list[Path]
) -> None:
    source = labelled_folder(tmp_path / "source", digits, per_class=20)
    target = labelled_folder(tmp_path / "target", digits, per_class=20, skip=20)
    run = tmp_path / "run"
    record = _train(source, target, run)["data"]["target"]
    names = [str(path.relative_to(target)) for path in target.rglob("*.png")]
    assert sorted(record["test_files"]) == sorted(held_out(names))
    assert record["test"] == len(record["test_files"])

    # After training: an unreadable file the held-out rule would pick, and a training
    # image that became unreadable. Reading the folder again now fails.
    break_file(_joins_the_held_out_part(target, 3), "garbage")
    trained_on = sorted(set(names) - set(record["test_files"]))[0]
    break_file(target / trained_on, "truncated")
    with pytest.raises(DatasetError, match="2 image file"):
        read_folder(target)

    decodes.clear()
    report = _exported(run, tmp_path / "models")
    # The test images came from the decode cache; only the monitor's reference read the
    # folder again (its training part, as it is now), and skipped it for the broken file.
    held = {Path(name).name for name in record["test_files"]}
    assert decodes and not {path.name for path in decodes} & held
    assert report["monitor_reference"]["file"] is None
    assert "2 image file" in report["monitor_reference"]["skipped"]
    summary = json.loads((run / "summary.json").read_text())
    assert report["target_test_accuracy_exported"] == pytest.approx(
        summary["target_test_accuracy"], abs=1e-12
    )
    for figures in report["onnx"]["parity"].values():
        assert figures["images"] == min(PARITY_IMAGES, record["test"])


@pytest.mark.slow
def test_an_unlabelled_target_folder_exports_on_its_recorded_sample(digits, tmp_path: Path) -> None:
    source = labelled_folder(tmp_path / "source", digits, per_class=6)
    target = unlabelled_folder(tmp_path / "target", digits, count=30)
    run = tmp_path / "run"
    record = _train(source, target, run)["data"]["target"]
    assert len(record["test_files"]) == record["test"] == 30
    break_file(target / "camera" / "late.png", "garbage")

    report = _exported(run, tmp_path / "models")
    assert report["target_test_accuracy_exported"] is None
    assert report["target_accuracy"].startswith("unknown: the target has no labels")
    # The classes the exported model gives the sample are those training measured on it.
    summary = json.loads((run / "summary.json").read_text())
    shares = summary["target_label_free"]["predicted_classes"]
    assert report["target_predicted_classes_exported"] == shares


@pytest.mark.slow
def test_a_target_test_folder_is_the_only_folder_export_reads(digits, tmp_path: Path) -> None:
    source = labelled_folder(tmp_path / "source", digits, per_class=6)
    target = unlabelled_folder(tmp_path / "target", digits, count=30)
    target_test = labelled_folder(tmp_path / "target-test", digits, per_class=2, skip=6)
    run = tmp_path / "run"
    record = _train(source, target, run, "--target-test", target_test)["data"]["target"]
    assert record["test_files"] == []
    break_file(target / "late.png", "empty")

    report = _exported(run, tmp_path / "models")
    summary = json.loads((run / "summary.json").read_text())
    assert report["target_test_accuracy_exported"] == pytest.approx(
        summary["target_test_accuracy"], abs=1e-12
    )


def test_recorded_files_read_back_as_the_split_they_were(digits, tmp_path: Path) -> None:
    """The held-out images and their labels, and the unlabelled sample, read from the
    recorded files alone equal the splits training made."""
    labelled = labelled_folder(tmp_path / "labelled", digits, per_class=20)
    unlabelled = unlabelled_folder(tmp_path / "unlabelled", digits, count=30)
    for folder in (labelled, unlabelled):
        domain = load_domain(str(folder))
        again = load_test_split(str(folder), files=domain.test_files)
        np.testing.assert_array_equal(again.images, domain.test.images)
        np.testing.assert_array_equal(again.labels, domain.test.labels)


def test_reading_a_few_files_keeps_the_rest_of_the_decode_cache(
    digits, tmp_path: Path, decodes: list[Path]
) -> None:
    folder = labelled_folder(tmp_path / "folder", digits, per_class=3)
    found = read_folder(folder)
    cache = DecodeCache(folder).path
    written = cache.read_bytes()
    decodes.clear()
    split = read_files(folder, found.files[:4])
    np.testing.assert_array_equal(split.images, found.images[:4])
    assert decodes == [] and cache.read_bytes() == written
    read_folder(folder)
    assert decodes == []  # the other 26 images are still cached

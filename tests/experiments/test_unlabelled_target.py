"""A target without labels: a folder of the user's own images, nobody's digits.

Every consumer of a run must work on such a run and show what can be known without
labels (source accuracy, domain accuracy, the predicted classes on the target, the
label-free reverse validation score), say plainly that the target accuracy is
unknown, and never print a made-up accuracy. One tiny ``dann-serve compare`` (both
methods, seed 0) on the tiny source and a folder of real PNG files without labels
feeds every test of this module; decoded images are cached in a temporary folder.
"""

from __future__ import annotations

import csv
import json
import re
import signal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from dann_serve.cli import main
from dann_serve.data import UNKNOWN_LABEL
from dann_serve.experiments.compare import UNKNOWN_TARGET_ACCURACY, pair_table, run_dir

STEPS = 40
TRAINING = ("--steps", str(STEPS), "--batch-size", "32", "--eval-every", "20", "--quiet")
# What an accuracy printed as a number would look like in a table cell or a line.
NUMBERED_TARGET = re.compile(r"target (test )?accuracy:? \d", re.IGNORECASE)


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory) -> Path:
    """The decode cache of the folders, away from ~/.cache."""
    folder = tmp_path_factory.mktemp("decoded")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DANN_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def photos(tiny_target, tmp_path_factory) -> Path:
    """The tiny target's training images as RGB PNG files in a folder without class
    subfolders (so without labels), spread over two subfolders of any name."""
    folder = tmp_path_factory.mktemp("user").resolve() / "photos"
    for index, pixels in enumerate(tiny_target.train.images):
        path = folder / ("kitchen" if index % 2 else "street") / f"img{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return folder


def _run(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def compared(tiny_pair, photos, tmp_path_factory) -> tuple[Path, Result]:
    """``dann-serve compare`` of the tiny source and the unlabelled folder, seed 0: the
    runs folder and the command's result."""
    runs = tmp_path_factory.mktemp("compare")
    source = tiny_pair[0]
    result = _run(
        "compare", "--source", source, "--target", photos, "--seeds", "0", "--out", runs, *TRAINING
    )
    return runs, result


@pytest.fixture(scope="module")
def dann_run(compared, tiny_pair, photos) -> Path:
    return run_dir(compared[0], tiny_pair[0], str(photos), "dann", 0)


# -- the run directory ------------------------------------------------------------------


@pytest.mark.slow
def test_the_run_directory_says_the_target_accuracy_is_unknown(dann_run, photos) -> None:
    summary = json.loads((dann_run / "summary.json").read_text())
    assert summary["target_test_accuracy"] is None
    assert summary["target_labels"] is False
    shares = summary["target_label_free"]["predicted_classes"]
    assert len(shares) == 10 and sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert 0.0 <= summary["target_label_free"]["called_target"] <= 1.0
    assert 0.0 <= summary["source_test_accuracy"] <= 1.0

    with (dann_run / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [0, 20, 40]
    assert all(row["target_accuracy"] == "" for row in rows)  # unknown, never 0.0
    assert all(0.0 <= float(row["domain_accuracy"]) <= 1.0 for row in rows)

    config = json.loads((dann_run / "config.json").read_text())
    assert config["options"]["target"] == str(photos)
    assert config["data"]["target"]["test_labelled"] is False
    assert config["data"]["target"]["train"] == 256
    for name in ("accuracy.png", "losses.png"):
        assert (dann_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_evaluate_on_an_unlabelled_folder_prints_unknown(dann_run, photos) -> None:
    result = _run("evaluate", dann_run, "--dataset", photos)
    assert f"{photos} test accuracy unknown (no labels)" in result.output
    assert re.search(
        r"predicted classes (\d:\d+\.\d% ){9}\d:\d+\.\d%; called target", result.output
    )


# -- compare ----------------------------------------------------------------------------


@pytest.mark.slow
def test_compare_shows_what_is_known_and_says_the_accuracy_is_unknown(compared) -> None:
    _, result = compared
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("| seed | method | source test accuracy | domain accuracy |")
    assert re.fullmatch(
        r"\| 0 \| source-only \| \d+\.\d \| \d+\.\d \| (\d+ ){9}\d+ \| \d \(\d+\.\d%\) \|", lines[2]
    )
    assert lines[3].startswith("| 0 | DANN | ")
    assert lines[-1] == f"{UNKNOWN_TARGET_ACCURACY}."
    assert "mean" not in result.stdout and "nan" not in result.stdout.lower()


def test_pair_table_without_target_labels_takes_no_mean_of_an_unknown() -> None:
    def summary(seed: int, method: str) -> dict:
        shares = [0.0] * 10
        shares[seed + 3] = 1.0
        return {
            "seed": seed,
            "method": method,
            "source_test_accuracy": 0.9,
            "domain_accuracy": 0.55,
            "target_test_accuracy": None,
            "target_label_free": {"predicted_classes": shares, "called_target": 0.5},
        }

    table, figures = pair_table(
        [
            summary(1, "dann"),
            summary(0, "dann"),
            summary(0, "source-only"),
            summary(1, "source-only"),
        ]
    )
    assert table.splitlines()[2:6] == [
        "| 0 | source-only | 90.0 | 55.0 | 0 0 0 100 0 0 0 0 0 0 | 3 (100.0%) |",
        "| 0 | DANN | 90.0 | 55.0 | 0 0 0 100 0 0 0 0 0 0 | 3 (100.0%) |",
        "| 1 | source-only | 90.0 | 55.0 | 0 0 0 0 100 0 0 0 0 0 | 4 (100.0%) |",
        "| 1 | DANN | 90.0 | 55.0 | 0 0 0 0 100 0 0 0 0 0 | 4 (100.0%) |",
    ]
    assert figures["seeds"] == [0, 1] and figures["target_labels"] is False
    assert figures["adapted_mean"] is None and figures["gain_mean"] is None


# -- report -----------------------------------------------------------------------------


@pytest.mark.slow
def test_report_renders_the_pair_and_says_the_accuracy_is_unknown(
    compared, tiny_pair, photos, tmp_path
) -> None:
    runs, _ = compared
    document = tmp_path / "docs" / "RESULTS.md"
    pair = f"{tiny_pair[0]}:{photos}"
    options = ("--seeds", "0", "--pairs", pair, "--feature-images", "40", "--no-tsne")
    result = _run("report", "--runs", runs, "--out", document, *options)
    assert "1 of 1 seeds complete" in result.output
    text = document.read_text()
    name = f"{tiny_pair[0]} -> {photos}"
    assert f"| {name} | unknown | unknown | - | 1 of 1 | 40 | 32 |" in text
    assert f"{name}: {UNKNOWN_TARGET_ACCURACY}." in text
    assert "What is known without target labels" in text
    assert "| 0 | DANN | " in text
    assert "256 test images without labels (the target accuracy is unknown)" in text
    assert "The target test accuracy is not drawn: unknown" in text
    assert "its images are drawn as dots" in text
    assert not NUMBERED_TARGET.search(text) and "nan" not in text.lower()
    figures = sorted((tmp_path / "docs" / "results").iterdir())
    assert [path.name.rsplit("-", 1)[-1] for path in figures] == ["curves.png", "features.png"]
    for path in figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
        assert f"](results/{path.name})" in text


@pytest.mark.slow
def test_report_finds_a_folder_given_as_a_relative_path(
    compared, tiny_pair, photos, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(photos.parent)
    document = tmp_path / "RESULTS.md"
    pair = f"{tiny_pair[0]}:./{photos.name}"
    options = ("--seeds", "0", "--pairs", pair, "--feature-images", "0")
    _run("report", "--runs", compared[0], "--out", document, *options)
    assert (
        f"| {tiny_pair[0]} -> {photos} | unknown | unknown | - | 1 of 1 |" in document.read_text()
    )


def test_the_pair_curves_leave_out_the_unknown_target_accuracy(tmp_path) -> None:
    from dann_serve.experiments.curves import plot_pair_curves

    rows = [
        {"step": step, "source_accuracy": "0.5", "target_accuracy": "", "domain_accuracy": "0.6"}
        for step in (0, 10)
    ]
    path = tmp_path / "curves.png"
    plot_pair_curves({"source-only": [rows, rows], "dann": [rows]}, path, "no labels")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_images_without_a_label_are_dots_never_a_digit() -> None:
    from dann_serve.data import Split
    from dann_serve.experiments.embedding import Sample, _scatter

    class Axis:
        def __init__(self) -> None:
            self.markers: list[tuple[str, int]] = []

        def scatter(self, x, y, marker, **style) -> None:
            self.markers.append((marker, len(x)))

        def set_xticks(self, ticks) -> None: ...
        def set_yticks(self, ticks) -> None: ...

    images = np.zeros((3, 32, 32, 3), np.uint8)
    sample = Sample(Split(images, np.array([1, 1, 7])), Split.unlabelled(images))
    assert np.sum(sample.labels == UNKNOWN_LABEL) == 3 and sample.unlabelled
    axis = Axis()
    _scatter(axis, np.zeros((6, 2)), sample)
    assert axis.markers == [("$1$", 2), ("$7$", 1), ("o", 3)]


# -- reverse validation -----------------------------------------------------------------


@pytest.mark.slow
def test_reverse_validation_scores_a_run_of_an_unlabelled_target(dann_run) -> None:
    result = _run("reverse-validate", dann_run, "--steps", "20", "--quiet")
    assert re.fullmatch(
        rf"{re.escape(str(dann_run))}: reverse validation [01]\.\d{{4}}\n", result.output
    )


# -- export and serving -----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(dann_run, tmp_path_factory) -> tuple[Path, Result]:
    model_dir = tmp_path_factory.mktemp("models")
    return model_dir, _run("export", dann_run, "--model-dir", model_dir)


@pytest.mark.slow
def test_export_json_says_the_accuracy_is_unknown(exported) -> None:
    model_dir, result = exported
    version = model_dir / "dann" / "1"
    assert result.stdout == f"{version}\n"
    assert "target accuracy unknown: the target has no labels" in result.stderr
    assert not re.search(r"\d\.\d", result.stderr)
    report = json.loads((version / "export.json").read_text())
    assert report["target_test_accuracy_exported"] is None
    assert report["accuracy_at_training"]["target_test"] is None
    assert report["target_accuracy"].startswith("unknown: the target has no labels")
    shares = report["target_predicted_classes_exported"]
    assert len(shares) == 10 and sum(shares) == pytest.approx(1.0, abs=1e-3)
    for figures in report["onnx"]["parity"].values():  # checked on the folder's images
        assert figures["images"] == 256 and figures["decisions_agree"] == 256


@pytest.mark.slow
def test_the_exported_version_serves(exported, photos, start_server, dann_client) -> None:
    model_dir, _ = exported
    server = start_server(model_dir)
    image = sorted(photos.rglob("*.png"))[0]
    answer = dann_client("predict", image, "--json", "--server", server.grpc_address)
    assert answer.returncode == 0, answer.stderr
    (record,) = [json.loads(line) for line in answer.stdout.splitlines()]
    assert record["path"] == str(image) and record["label"] in range(10)
    assert len(record["probabilities"]) == 10
    assert server.stop(signal.SIGINT) == 0, server.log()

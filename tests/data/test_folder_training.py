"""Training on folders of the user's own images: a folder as ``--source`` or
``--target``, ``--source-test``/``--target-test``, the held-out part of a labelled
folder, and what the images of a folder are.

The images are real PNG files written by ``image_folders``; runs are real ``dann-serve
train`` commands of a few steps, in process."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from support.image_folders import (
    TINY,
    Killed,
    dann_serve,
    held_out,
    labelled_folder,
    metric_steps,
    run_record,
    unlabelled_folder,
    write_png,
)

from dann_client import preprocessing
from dann_serve.config import TrainConfig
from dann_serve.data import DatasetError, canonical, folders, is_folder, load_domain
from dann_serve.data.folders import read_folder
from dann_serve.training.loop import load_pair
from dann_serve.training.rundir import read_metrics
from dann_serve.training.step import Trainer

# Each test decodes into a cache of its own (the ``cache_dir`` fixture), never ~/.cache.
pytestmark = pytest.mark.usefixtures("cache_dir")

# -- training on folders ------------------------------------------------------------------


def test_a_labelled_source_folder_and_an_unlabelled_target_folder_train(
    digits, tmp_path: Path, decodes: list[Path], cache_dir: Path
) -> None:
    source = labelled_folder(tmp_path / "source", digits, per_class=6)
    target = unlabelled_folder(tmp_path / "target", digits, count=30)
    target_test = labelled_folder(tmp_path / "target-test", digits, per_class=2, skip=6)

    # With a labelled target test folder, the target accuracy is measured on it.
    run = tmp_path / "with-test"
    args = ("train", "--source", source, "--target", target, *TINY)
    result = dann_serve(*args, "--target-test", target_test, "--out", run)
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    record = run_record(run)
    assert record["options"]["source"] == str(source.resolve())
    assert record["options"]["target"] == str(target.resolve())
    assert record["options"]["target_test"] == str(target_test.resolve())
    described = record["data"]["source"]
    assert described["name"] == str(source.resolve())
    assert described["train"] + described["test"] == 60
    assert described["test"] >= 1 and described["test_labelled"] is True
    assert described["note"] == (
        f"test: 1 image in 10 held out by a hash of its path ({described['test']} of 60)"
    )
    assert record["data"]["target"] == {
        "name": str(target.resolve()),
        "train": 30,
        "test": 20,
        "test_labelled": True,
        "note": f"test: the labelled folder {target_test.resolve()}",
        "skipped": [],
        "test_files": [],  # the test folder's images, not a part of the target folder
    }
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 4 and summary["target_labels"] is True
    assert isinstance(summary["target_test_accuracy"], float)
    assert metric_steps(run) == [0, 2, 4]
    assert len(decodes) == 60 + 30 + 20
    assert len(list(cache_dir.glob("*.npz"))) == 3

    # Without it, the target accuracy is unknown, and nothing is decoded a second time.
    decodes.clear()
    run = tmp_path / "without-test"
    result = dann_serve(*args, "--out", run)
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    assert decodes == []
    assert "target test accuracy unknown (no target labels)" in result.output
    target_record = run_record(run)["data"]["target"]
    assert target_record["test_labelled"] is False
    assert target_record["test"] == 30  # all of its images, fewer than UNLABELLED_SAMPLE
    assert target_record["note"].startswith("no labels: measured on 30 of its own images")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["target_test_accuracy"] is None and summary["target_labels"] is False
    assert [row["target_accuracy"] for row in read_metrics(run / "metrics.csv")] == ["", "", ""]


def test_a_folder_given_relative_is_recorded_absolute_and_resumes_from_elsewhere(
    digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``./digits`` is the folder even though ``digits`` names a data set; the run
    records it absolute, so ``--resume`` (with ``--data-dir`` and ``--quiet``, which
    it allows) finds it from another working directory."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    labelled_folder(work / "digits", digits, per_class=4)
    unlabelled_folder(work / "photos", digits, count=12)
    elsewhere.mkdir()
    monkeypatch.chdir(work)

    original = Trainer.train_step

    def killed_after_the_first_checkpoint(self: Trainer) -> None:
        if self.step == 2:
            raise Killed
        original.__get__(self, Trainer)()

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_step", killed_after_the_first_checkpoint)
        with pytest.raises(Killed):
            dann_serve("train", "--source", "./digits", "--target", "photos", *TINY, "--out", "run")
    run = work / "run"
    record = run_record(run)
    assert record["options"]["source"] == str((work / "digits").resolve())
    assert record["options"]["target"] == str((work / "photos").resolve())
    assert record["data"]["source"]["train"] + record["data"]["source"]["test"] == 40
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-2")

    monkeypatch.chdir(elsewhere)
    result = dann_serve("train", "--out", run, "--resume", "--quiet", "--data-dir", elsewhere)
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    assert metric_steps(run) == [0, 2, 4]
    assert run_record(run)["options"]["source"] == str((work / "digits").resolve())


def test_a_bare_name_means_the_data_set_and_dot_slash_the_folder(
    digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labelled_folder(tmp_path / "digits", digits, per_class=3)
    monkeypatch.chdir(tmp_path)
    assert not is_folder("digits") and is_folder("./digits") and is_folder("digits/")
    assert canonical("digits") == "digits"
    assert canonical("./digits") == str((tmp_path / "digits").resolve())
    named = load_domain("digits")
    assert named.name == "digits" and len(named.train) + len(named.test) == 1797
    folder = load_domain("./digits")
    assert len(folder.train) + len(folder.test) == 30
    with pytest.raises(DatasetError, match=r"^\./nowhere: no such folder$"):
        load_domain("./nowhere")


def test_source_test_replaces_the_source_test_split(digits, tmp_path: Path) -> None:
    source = labelled_folder(tmp_path / "source", digits, per_class=4)
    source_test = labelled_folder(tmp_path / "source-test", digits, per_class=1, skip=4)
    target = str(unlabelled_folder(tmp_path / "target", digits, count=8))

    folder_source, _ = load_pair(
        TrainConfig(source=str(source), target=target, source_test=str(source_test), batch_size=8)
    )
    assert (len(folder_source.train), len(folder_source.test)) == (40, 10)  # none held out
    assert folder_source.note == f"test: the labelled folder {source_test}"
    expected = read_folder(source_test)
    np.testing.assert_array_equal(folder_source.test.images, expected.images)
    np.testing.assert_array_equal(folder_source.test.labels, expected.labels)

    named_source, _ = load_pair(
        TrainConfig(source="digits", target=target, source_test=str(source_test), batch_size=8)
    )
    assert (len(named_source.train), len(named_source.test)) == (1297, 10)
    np.testing.assert_array_equal(named_source.test.images, expected.images)


def test_the_held_out_part_of_a_labelled_folder_is_fixed(digits, tmp_path: Path) -> None:
    """The same files whatever the seed, the folder's place or the order the files were
    written in; adding files moves none of the others between the parts."""
    source = labelled_folder(tmp_path / "source", digits, per_class=8)
    target = str(unlabelled_folder(tmp_path / "target", digits, count=8))

    def parts(folder: Path, seed: int = 0) -> tuple[set[bytes], set[bytes]]:
        domain, _ = load_pair(
            TrainConfig(source=str(folder), target=target, seed=seed, batch_size=8)
        )
        return (
            {image.tobytes() for image in domain.train.images},
            {image.tobytes() for image in domain.test.images},
        )

    train, test = parts(source)
    assert len(train) + len(test) == 80 and train.isdisjoint(test) and test
    # 1 in 10 by a hash of the path inside the folder, as documented.
    names = [str(path.relative_to(source)) for path in source.rglob("*.png")]
    assert test == {preprocessing.load_image(source / name).tobytes() for name in held_out(names)}
    assert parts(source, seed=7) == (train, test)

    # The same files written in the opposite order into another place.
    moved = tmp_path / "elsewhere" / "copy"
    for name in sorted(names, reverse=True):
        (moved / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, moved / name)
    assert parts(moved, seed=3) == (train, test)

    # More files: the old ones stay where they were.
    labelled_folder(source, digits, per_class=8, skip=8)
    more_train, more_test = parts(source)
    assert train <= more_train and test <= more_test and len(more_test) > len(test)


def test_an_unlabelled_target_is_measured_on_a_fixed_sample_of_its_images(
    digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folders, "UNLABELLED_SAMPLE", 5)
    target = unlabelled_folder(tmp_path / "target", digits, count=20)
    first, second = (load_domain(str(target)) for _ in range(2))
    assert len(first.train) == 20 and len(first.test) == 5 and not first.test.labelled
    np.testing.assert_array_equal(first.test.images, second.test.images)
    train_rows = {image.tobytes() for image in first.train.images}
    assert all(image.tobytes() in train_rows for image in first.test.images)


# -- what a folder holds ------------------------------------------------------------------


def test_folder_images_are_the_clients_preprocessing_of_each_file(digits, tmp_path: Path) -> None:
    source = labelled_folder(tmp_path / "source", digits, per_class=2)
    found = read_folder(source)
    images, labels = digits
    for name, image, label in zip(found.files, found.images, found.labels, strict=True):
        digit, index = name.split(os.sep)
        assert int(digit) == label == labels[int(index[:4])]
        np.testing.assert_array_equal(
            image, preprocessing.lay_out_images(images[None, int(index[:4])])[0]
        )
    # Colour, other sizes and other formats: what dann-client's load_image makes of them.
    other = tmp_path / "other"
    rng = np.random.default_rng(0)
    write_png(other / "colour.png", rng.integers(0, 256, (40, 30, 3), np.uint8))
    Image.fromarray(rng.integers(0, 256, (50, 50, 3), np.uint8)).save(other / "photo.jpg")
    Image.fromarray(rng.integers(0, 256, (32, 32), np.uint8)).save(other / "grey.bmp")
    found = read_folder(other)
    assert found.files == ["colour.png", "grey.bmp", "photo.jpg"]
    for name, image in zip(found.files, found.images, strict=True):
        np.testing.assert_array_equal(image, preprocessing.load_image(other / name))


def test_an_unlabelled_folder_is_searched_recursively(digits, tmp_path: Path) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=6)
    (target / "notes.txt").write_text("not an image")
    write_png(target / ".hidden.png", digits[0][0])
    write_png(target / ".thumbnails" / "small.png", digits[0][0])
    found = read_folder(target)
    assert sorted(found.files) == sorted(
        os.path.join(*where, f"img{600 + n:04d}.png")
        for n, where in enumerate([(), ("camera",), ("camera", "2024")] * 2)
    )
    assert not found.labelled and found.skipped == []


def test_mnist_png_files_decode_to_the_mnist_data_set_exactly(shared_data, tmp_path) -> None:
    """The real test images of MNIST as PNG files: a folder of them gives the arrays the
    ``mnist`` data set loader gives, bit for bit."""
    from dann_serve.data.mnist import IMAGES_MAGIC, read_idx

    root = shared_data("mnist", "t10k-images-idx3-ubyte.gz")
    pixels = read_idx(root / "mnist" / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)[:200]
    for index, image in enumerate(pixels):
        write_png(tmp_path / "mnist" / f"{index:05d}.png", image)
    found = read_folder(tmp_path / "mnist")
    named = load_domain("mnist", root)
    np.testing.assert_array_equal(found.images, named.train.images[:200])

"""Training on folders of the user's own images: ``--source``/``--target`` given a folder,
``--source-test``/``--target-test``, ``--skip-unreadable``, the decode cache, and what
``--resume`` refuses.

Every image is a real file written here: 28x28 grey PNGs of scikit-learn's handwritten
digits (the embedded ``digits`` data set, cut back to MNIST's 28x28), so no test
skips for want of data; the one test on MNIST's own files uses ../shared/data when
it is there. Runs are real ``dann-serve train`` commands (in process, through
click's runner) of a few steps on batches of 8. ``$DANN_CACHE_DIR`` points into each
test's temporary folder, so nothing is written to ``~/.cache``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner, Result
from PIL import Image

from dann_client import preprocessing
from dann_serve.cli import main
from dann_serve.config import TrainConfig
from dann_serve.data import DatasetError, canonical, decode_cache, folders, is_folder, load_domain
from dann_serve.data.decode_cache import DecodeCache, default_cache_dir
from dann_serve.data.folders import read_folder
from dann_serve.training.loop import load_pair, train_run
from dann_serve.training.rundir import read_metrics
from dann_serve.training.step import Trainer

TINY = ("--steps", "4", "--batch-size", "8", "--eval-every", "2", "--quiet")


class Killed(BaseException):
    """A SIGKILL, simulated in process: nothing in ``train_run`` handles it, so nothing
    is saved on the way out."""


# -- image files on disk ------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Grey 28x28 uint8 digits and their labels: the ``digits`` data set's training
    images without the 2-pixel black frame its MNIST layout adds."""
    domain = load_domain("digits")
    return domain.train.images[:, 2:30, 2:30, 0].copy(), domain.train.labels


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def labelled_folder(
    root: Path, digits: tuple[np.ndarray, np.ndarray], per_class: int, skip: int = 0
) -> Path:
    """``root/<digit>/<index>.png``: ``per_class`` images of every digit, the first
    ``skip`` of each left out (so that two folders can hold different images)."""
    images, labels = digits
    for digit in range(10):
        for index in np.flatnonzero(labels == digit)[skip : skip + per_class]:
            write_png(root / str(digit) / f"{index:04d}.png", images[index])
    return root


def unlabelled_folder(
    root: Path, digits: tuple[np.ndarray, np.ndarray], count: int, start: int = 600
) -> Path:
    """``count`` images spread over nested subfolders that are not named 0 to 9."""
    images = digits[0]
    for n, index in enumerate(range(start, start + count)):
        where = ("", "camera", "camera/2024")[n % 3]
        write_png(root / where / f"img{index:04d}.png", images[index])
    return root


def break_file(path: Path, how: str) -> Path:
    """Make ``path`` an image file nobody can decode: ``empty``, ``garbage``,
    ``truncated`` (the first half of a real PNG) or a ``dangling`` symbolic link."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"this is not a PNG at all" * 10)
    elif how == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)).save(buffer, "PNG")
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif how == "dangling":
        path.symlink_to(path.parent / "no-such-target.png")
    else:
        raise ValueError(how)
    return path


# -- running and reading ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own decode cache (never ~/.cache)."""
    path = tmp_path / "decode-cache"
    monkeypatch.setenv(decode_cache.CACHE_DIR_VARIABLE, str(path))
    return path


@pytest.fixture()
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the client's ``load_image`` is asked to decode, in order."""
    seen: list[Path] = []
    original = preprocessing.load_image

    def counting(path, **options):
        seen.append(Path(path))
        return original(path, **options)

    monkeypatch.setattr(preprocessing, "load_image", counting)
    return seen


def dann_serve(*args: str | Path) -> Result:
    """``dann-serve *args`` in this process, as a user types it."""
    return CliRunner().invoke(main, [str(arg) for arg in args])


def error_line(result: Result, code: int = 1) -> str:
    """The one line of a refused command (no traceback, no crash)."""
    assert result.exit_code == code, f"{result.output}{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("dann-serve: error: "), lines[0]
    return lines[0]


def run_record(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def metric_steps(run: Path) -> list[int]:
    return [int(row["step"]) for row in read_metrics(run / "metrics.csv")]


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file below ``folder``: its content hash and modification time."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def held_out(names: list[str]) -> set[str]:
    return {name for name in names if zlib.crc32(name.encode()) % folders.HOLDOUT_EVERY == 0}


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
            image, preprocessing.layout_batch(images[None, int(index[:4])])[0]
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


# -- layout errors: one line naming the folder and the problem -----------------------------


def _empty(root: Path, digits) -> Path:
    root.mkdir()
    (root / "readme.txt").write_text("no images here")
    return root


def _class_missing(root: Path, digits) -> Path:
    shutil.rmtree(labelled_folder(root, digits, per_class=3) / "7")
    return root


def _stray_subfolder(root: Path, digits) -> Path:
    write_png(labelled_folder(root, digits, per_class=3) / "other" / "x.png", digits[0][0])
    return root


def _subfolder_10(root: Path, digits) -> Path:
    write_png(labelled_folder(root, digits, per_class=3) / "10" / "x.png", digits[0][0])
    return root


def _empty_class(root: Path, digits) -> Path:
    for path in (labelled_folder(root, digits, per_class=3) / "3").iterdir():
        path.unlink()
    return root


def _loose_image(root: Path, digits) -> Path:
    write_png(labelled_folder(root, digits, per_class=3) / "loose.png", digits[0][0])
    return root


def _few_unlabelled(root: Path, digits) -> Path:
    return unlabelled_folder(root, digits, count=5)


def _few_labelled(root: Path, digits) -> Path:
    return labelled_folder(root, digits, per_class=2)


def _unlabelled(root: Path, digits) -> Path:
    return unlabelled_folder(root, digits, count=20)


LAYOUT_ERRORS = {
    # case: (option the folder is given to, how it is made, batch size, words of the error)
    "empty folder": ("--target", _empty, 8, "no image files in it or below it"),
    "class missing": ("--source", _class_missing, 8, "class folder(s) 7 missing"),
    "subfolder not 0-9": ("--source", _stray_subfolder, 8, "but it also holds other"),
    "subfolder 10": ("--target", _subfolder_10, 8, "but it also holds 10"),
    "empty class folder": ("--source", _empty_class, 8, "class folder 3/ holds no images"),
    "image beside the classes": ("--source", _loose_image, 8, "beside the class folders"),
    "fewer than a batch, target": (
        "--target",
        _few_unlabelled,
        32,
        "5 training images, fewer than the 16 of one batch's target half (--batch-size 32)",
    ),
    "fewer than a batch, source": (
        "--source",
        _few_labelled,
        64,
        "training images, fewer than the 32 of one batch's source half (--batch-size 64)",
    ),
    "unlabelled source": ("--source", _unlabelled, 8, "the source must be labelled"),
    "unlabelled test folder": ("--target-test", _unlabelled, 8, "a test folder must be labelled"),
    "missing folder": ("--target-test", lambda root, digits: root, 8, "no such folder"),
}


@pytest.mark.parametrize("case", LAYOUT_ERRORS)
def test_a_bad_folder_is_one_line_naming_it_and_the_problem(
    case: str, digits, tmp_path: Path
) -> None:
    option, make, batch_size, words = LAYOUT_ERRORS[case]
    folder = make(tmp_path / "folder", digits)
    good = {"--source": "digits", "--target": "digits"}
    given = {**good, option: folder}
    run = tmp_path / "run"
    args = [arg for pair in given.items() for arg in pair]
    result = dann_serve("train", *args, *TINY, "--batch-size", batch_size, "--out", run)
    line = error_line(result)
    assert f"{folder.resolve()}: " in line or f"{folder}: " in line, line
    assert words in line, line
    assert not run.exists()


def test_a_labelled_folder_too_small_to_hold_any_image_out_is_refused(
    digits, tmp_path: Path
) -> None:
    """Without a test folder, a labelled folder whose paths all fall in the training
    part would report an accuracy on no images at all (0.0): refused instead."""
    source = tmp_path / "source"
    images = digits[0]
    for digit in range(10):
        written, n = 0, 0
        while written < 2:
            name = f"{digit}/x{n}.png"
            n += 1
            if not held_out([name]):
                write_png(source / name, images[10 * digit + written])
                written += 1
    run = tmp_path / "run"
    result = dann_serve("train", "--source", source, "--target", "digits", *TINY, "--out", run)
    line = error_line(result)
    assert f"{source.resolve()}: 20 images" in line and "--source-test" in line, line
    assert not run.exists()
    # With a test folder of its own the same folder trains.
    source_test = labelled_folder(tmp_path / "source-test", digits, per_class=1, skip=5)
    domain, _ = load_pair(
        TrainConfig(source=str(source), source_test=str(source_test), batch_size=8)
    )
    assert (len(domain.train), len(domain.test)) == (20, 10)


# -- unreadable files ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["empty", "garbage", "truncated", "dangling"])
def test_each_kind_of_unreadable_file_is_named_with_its_reason(
    how: str, digits, tmp_path: Path
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=4)
    bad = break_file(target / "camera" / "bad.png", how)
    with pytest.raises(DatasetError) as raised:
        read_folder(target)
    message = str(raised.value)
    assert message.startswith(f"1 image file(s) cannot be read: {bad} (")
    assert message.endswith("(--skip-unreadable trains without them)")
    found = read_folder(target, skip_unreadable=True)
    assert found.skipped == [str(bad)] and len(found.images) == 4


def test_an_unreadable_file_stops_training_before_anything_is_written(
    digits, tmp_path: Path
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=12)
    bad = [
        break_file(target / "camera" / "empty.png", "empty"),
        break_file(target / "z-garbage.jpg", "garbage"),
    ]
    run = tmp_path / "run"
    args = ("train", "--source", "digits", "--target", target, *TINY, "--out", run)
    line = error_line(dann_serve(*args))
    assert "2 image file(s) cannot be read: " in line
    for path in bad:
        assert f"{target.resolve() / path.relative_to(target)} (" in line
    assert " more " not in line and line.endswith("(--skip-unreadable trains without them)")
    assert not run.exists()

    # With the flag the run goes on without them and lists each one in config.json.
    result = dann_serve(*args, "--skip-unreadable")
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    record = run_record(run)
    assert record["options"]["skip_unreadable"] is True
    assert record["data"]["target"]["train"] == 12
    assert sorted(record["data"]["target"]["skipped"]) == sorted(
        str(target.resolve() / path.relative_to(target)) for path in bad
    )
    assert record["data"]["source"]["skipped"] == []


def test_more_than_ten_unreadable_files_show_the_first_ten_and_a_count(
    digits, tmp_path: Path
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=8)
    bad = [break_file(target / f"bad{n:02d}.png", "garbage") for n in range(13)]
    run = tmp_path / "run"
    line = error_line(
        dann_serve("train", "--source", "digits", "--target", target, *TINY, "--out", run)
    )
    assert "13 image file(s) cannot be read: " in line
    shown = [path for path in bad if f"{path.resolve()} (" in line]
    assert shown == bad[:10], line
    assert "; and 3 more (--skip-unreadable trains without them)" in line
    assert not run.exists()


# -- the decode cache ---------------------------------------------------------------------


def test_a_second_read_decodes_nothing_and_gives_the_same_images(
    digits, tmp_path: Path, decodes: list[Path], cache_dir: Path
) -> None:
    source = labelled_folder(tmp_path / "source", digits, per_class=3)
    first = read_folder(source)
    assert len(decodes) == 30
    (cache_file,) = cache_dir.glob("*.npz")
    assert cache_file == DecodeCache(source).path
    written = cache_file.stat().st_mtime_ns
    decodes.clear()
    second = read_folder(source)
    assert decodes == []
    assert cache_file.stat().st_mtime_ns == written  # a hit rewrites nothing
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.files == second.files


def test_a_changed_added_or_removed_file_costs_only_itself(
    digits, tmp_path: Path, decodes: list[Path]
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=9)
    before = read_folder(target)
    changed = target / "camera" / "img0601.png"

    # Other pixels, the same size: the modification time tells.
    decodes.clear()
    replacement = 255 - np.asarray(Image.open(changed))
    write_png(changed, replacement)
    info = changed.stat()
    os.utime(changed, ns=(info.st_atime_ns, info.st_mtime_ns + 2_000_000_000))
    after = read_folder(target)
    assert decodes == [changed]
    row = after.files.index(str(changed.relative_to(target)))
    np.testing.assert_array_equal(after.images[row], preprocessing.load_image(changed))
    assert not np.array_equal(after.images[row], before.images[row])
    others = [i for i in range(len(after.files)) if i != row]
    np.testing.assert_array_equal(after.images[others], before.images[others])

    # A new file is decoded alone; a removed one is dropped without decoding anything.
    decodes.clear()
    added = write_png(target / "new.png", digits[0][0])
    assert len(read_folder(target).files) == 10 and decodes == [added]
    decodes.clear()
    (target / "img0600.png").unlink()
    now = read_folder(target)
    assert len(now.files) == 9 and "img0600.png" not in now.files and decodes == []
    assert read_folder(target).files == now.files and decodes == []


def test_an_unreadable_file_is_tried_again_without_rewriting_the_cache(
    digits, tmp_path: Path, decodes: list[Path], cache_dir: Path
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=5)
    bad = break_file(target / "bad.png", "garbage")
    first = read_folder(target, skip_unreadable=True)
    written = DecodeCache(target).path.stat().st_mtime_ns
    decodes.clear()
    second = read_folder(target, skip_unreadable=True)
    assert decodes == [bad]  # never cached: a file fixed later is read then
    assert second.skipped == first.skipped == [str(bad)]
    assert DecodeCache(target).path.stat().st_mtime_ns == written
    np.testing.assert_array_equal(second.images, first.images)

    decodes.clear()
    write_png(bad, digits[0][1])  # fixed
    assert len(read_folder(target).files) == 6 and decodes == [bad]


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _emptied(path: Path) -> None:
    path.write_bytes(b"")


def _tampered(path: Path, key: str) -> None:
    """Change one array of the (valid) cache file and keep its old checksum."""
    with np.load(path) as stored:
        arrays = dict(stored)
    if key == "images":
        arrays["images"] = 255 - arrays["images"]
    else:  # an index claiming other files
        index = json.loads(arrays["index"].tobytes())
        index = [[f"x{name}", size, mtime] for name, size, mtime in index]
        arrays["index"] = np.frombuffer(json.dumps(index).encode(), np.uint8)
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def _forged(path: Path) -> None:
    """A cache file whose checksum matches its contents, but of the wrong dtype."""
    with np.load(path) as stored:
        images, index = stored["images"].astype(np.float32), stored["index"]
    checksum = decode_cache._checksum(images, index.tobytes())
    with path.open("wb") as handle:
        np.savez(
            handle,
            images=images,
            index=index,
            checksum=np.frombuffer(checksum.encode(), np.uint8),
        )


CORRUPTIONS = {
    "random bytes": _garbage,
    "truncated": _truncated,
    "empty": _emptied,
    "pixels changed": lambda path: _tampered(path, "images"),
    "index changed": lambda path: _tampered(path, "index"),
    "checksum matches, wrong dtype": _forged,
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_cache_is_rebuilt_never_trusted(
    corruption: str, digits, tmp_path: Path, decodes: list[Path], capsys
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=6)
    expected = read_folder(target)
    cache_file = DecodeCache(target).path
    CORRUPTIONS[corruption](cache_file)
    decodes.clear()
    capsys.readouterr()
    found = read_folder(target)
    assert len(decodes) == 6  # every file decoded again
    np.testing.assert_array_equal(found.images, expected.images)
    assert found.files == expected.files
    assert f"{cache_file}: broken decode cache, decoding again (" in capsys.readouterr().err
    decodes.clear()
    read_folder(target)  # rebuilt: a hit again
    assert decodes == []
    assert capsys.readouterr().err == ""


def test_the_cache_is_keyed_by_folder_and_preprocessing_version(
    digits, tmp_path: Path, decodes: list[Path], monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=6)
    read_folder(target)
    decodes.clear()
    moved = target.rename(tmp_path / "moved")
    read_folder(moved)
    assert len(decodes) == 6
    decodes.clear()
    monkeypatch.setattr(decode_cache, "preprocessing_version", lambda: "another version")
    read_folder(moved)
    assert len(decodes) == 6
    assert len(list(cache_dir.glob("*.npz"))) == 3


def test_the_cache_lives_under_dann_cache_dir_else_the_xdg_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    assert default_cache_dir() == cache_dir
    monkeypatch.delenv(decode_cache.CACHE_DIR_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dann-serve" / "decoded"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "dann-serve" / "decoded"


# -- --resume: the saved options or nothing ----------------------------------------------


@pytest.fixture(scope="module")
def folder_run(digits, tmp_path_factory) -> dict[str, Path]:
    """A finished 4-step run on a labelled source folder and an unlabelled target folder
    (shared: the tests that use it must leave it as it is)."""
    root = tmp_path_factory.mktemp("folder-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(decode_cache.CACHE_DIR_VARIABLE, str(root / "cache"))
        paths = {
            "source": labelled_folder(root / "source", digits, per_class=4),
            "target": unlabelled_folder(root / "target", digits, count=12),
            "other": labelled_folder(root / "other", digits, per_class=2, skip=4),
            "run": root / "run",
        }
        args = ("--source", paths["source"], "--target", paths["target"])
        result = dann_serve("train", *args, *TINY, "--out", paths["run"])
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return paths


RESUME_CONFLICTS = {
    "steps": (["--steps", "8"], ["--steps 4 -> 8"]),
    "seed and mode": (
        ["--seed", "1", "--mode", "source-only"],
        ["--seed 0 -> 1", "--mode dann -> source-only"],
    ),
    "source folder": (["--source", "{other}"], ["--source {source} -> {other}"]),
    "target test folder": (["--target-test", "{other}"], ["--target-test None -> {other}"]),
    "skip unreadable": (["--skip-unreadable"], ["--skip-unreadable False -> True"]),
    "batch size, with --quiet": (["--batch-size", "16", "--quiet"], ["--batch-size 8 -> 16"]),
}


@pytest.mark.parametrize("case", RESUME_CONFLICTS)
def test_resume_with_other_options_exits_2_naming_each_and_leaves_the_run(
    case: str, folder_run: dict[str, Path]
) -> None:
    paths = {name: str(path.resolve()) for name, path in folder_run.items()}
    given, named = RESUME_CONFLICTS[case]
    run = folder_run["run"]
    before = snapshot(run)
    result = dann_serve("train", "--out", run, "--resume", *(arg.format(**paths) for arg in given))
    line = error_line(result, code=2)
    assert line.startswith(
        f"dann-serve: error: {run} was trained with other options (saved -> given): "
    )
    differing = line.split("(saved -> given): ")[1].split("; resume without them")[0]
    assert sorted(differing.split("; ")) == sorted(words.format(**paths) for words in named)
    assert snapshot(run) == before


def test_resume_allows_the_saved_values_data_dir_and_quiet(
    folder_run: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved values given again (a folder relative to here is the same folder), and
    where the data lies: the run goes on (here: it is finished, so it only reports)."""
    run = tmp_path / "run"
    shutil.copytree(folder_run["run"], run)
    monkeypatch.chdir(folder_run["source"].parent)
    result = dann_serve(
        "train",
        "--out",
        run,
        "--resume",
        "--quiet",
        "--data-dir",
        tmp_path,
        "--steps",
        "4",
        "--source",
        "./source",
    )
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    assert result.output.startswith(f"{run}: step 4, ")


# -- a resumed run logs each step exactly once ---------------------------------------------


def _die_in_step(at: int):
    original = Trainer.train_step

    def step(self: Trainer) -> None:
        if self.step == at:
            raise Killed
        original.__get__(self, Trainer)()

    return Trainer, "train_step", step


def _die_in_save(at: int):
    original = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **options):
        if checkpoint_number == at:
            raise Killed
        return original(self, checkpoint_number=checkpoint_number, **options)

    return tf.train.CheckpointManager, "save", save


KILLS = {
    # where: (patch, steps in metrics.csv after the kill, latest checkpoint then)
    "in the first step": (_die_in_step(0), [0], None),
    "writing the first checkpoint": (_die_in_save(2), [0, 2], None),
    "after the first checkpoint": (_die_in_step(2), [0, 2], 2),
    "writing the last checkpoint": (_die_in_save(4), [0, 2, 4], 2),
}


@pytest.mark.parametrize("where", KILLS)
def test_every_resume_leaves_each_step_exactly_once(
    where: str, tiny_pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed (simulated in process) after the step-0 row and before the first
    checkpoint, a run starts over from step 0 on resume: the step-0 row must not be
    logged twice (0, 0, 2, 4)."""
    (owner, name, dying), logged, checkpoint = KILLS[where]
    config = TrainConfig(
        source=tiny_pair[0], target=tiny_pair[1], steps=4, batch_size=8, eval_every=2
    )
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(owner, name, dying)
        with pytest.raises(Killed):
            train_run(config, run, show_progress=False)
    assert metric_steps(run) == logged
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    assert (int(latest.rsplit("-", 1)[1]) if latest else None) == checkpoint

    summary = train_run(config, run, resume=True, show_progress=False)
    assert summary["step"] == 4
    assert metric_steps(run) == [0, 2, 4]
    with (run / "metrics.csv").open(newline="") as handle:
        assert next(csv.reader(handle))[0] == "step"  # one header, at the top


def test_the_preprocessing_version_follows_the_transparency_rule(monkeypatch, tmp_path) -> None:
    """Editing the transparency rule (background.py) changes what a folder decodes to,
    so it must change the cache key as an edit of preprocessing.py does."""
    from dann_client import background

    before = decode_cache.preprocessing_version()
    decode_cache.preprocessing_version.cache_clear()
    edited = tmp_path / "background.py"
    edited.write_bytes(Path(background.__file__).read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(background, "__file__", str(edited))
    try:
        assert decode_cache.preprocessing_version() != before
    finally:
        decode_cache.preprocessing_version.cache_clear()

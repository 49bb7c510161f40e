"""A folder that cannot be trained on: each layout error is one line naming the folder
and the problem, each unreadable file is named with its reason, and nothing is written
before the refusal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.image_folders import (
    TINY,
    break_file,
    dann_serve,
    error_line,
    held_out,
    labelled_folder,
    run_record,
    unlabelled_folder,
    write_png,
)

from dann_serve.config import TrainConfig
from dann_serve.data import DatasetError
from dann_serve.data.folders import read_folder
from dann_serve.training.loop import load_pair

# Each test decodes into a cache of its own (the ``cache_dir`` fixture), never ~/.cache.
pytestmark = pytest.mark.usefixtures("cache_dir")

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

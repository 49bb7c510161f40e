"""The colour-texture variants: MNIST-M's recipe on the project's grey digits, seeded,
train and test on disjoint regions of the photographs, named data sets that fail in
one line when their digits' files are missing."""

import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

from dann_serve import data
from dann_serve.cli import main
from dann_serve.data import DatasetError
from dann_serve.data.digits import load_digits
from dann_serve.data.texture import (
    BLOCK,
    blend,
    cut_patches,
    patch_boxes,
    photographs,
    texture_variant,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def textured(digits):
    return texture_variant(digits)


def _digest(split) -> str:
    return hashlib.sha256(split.images.tobytes() + split.labels.tobytes()).hexdigest()


def test_the_same_call_returns_the_same_bytes(digits, textured) -> None:
    again = texture_variant(digits)
    assert _digest(again.train) == _digest(textured.train)
    assert _digest(again.test) == _digest(textured.test)


def test_train_and_test_patches_come_from_disjoint_blocks() -> None:
    """Every patch lies inside one block, and no block gives patches to both splits, so
    no test image is blended on pixels a training image was."""
    used = {}
    for part in ("train", "test"):
        boxes = patch_boxes(3000, part)
        top, left = boxes[:, 1] % BLOCK, boxes[:, 2] % BLOCK
        assert (top + 32 <= BLOCK).all() and (left + 32 <= BLOCK).all()
        used[part] = {(p, t // BLOCK, x // BLOCK) for p, t, x in boxes.tolist()}
        assert {p for p, _, _ in used[part]} == set(range(len(photographs())))
    assert not used["train"] & used["test"]


def test_the_splits_draw_different_patches_for_the_same_digits(digits) -> None:
    same = digits.test.images[:200]
    train_look = blend(same, cut_patches(patch_boxes(200, "train")))
    test_look = blend(same, cut_patches(patch_boxes(200, "test")))
    assert (train_look != test_look).any(axis=(1, 2, 3)).all()


def test_blend_is_mnist_m_recipe(digits, textured) -> None:
    """Where the digit is black the patch shows unchanged, where its ink is full the
    patch is inverted, and in between the distance of the two."""
    images = digits.test.images
    patches = cut_patches(patch_boxes(len(images), "test"))
    out = textured.test.images
    black, full = images == 0, images == 255
    assert black.mean() > 0.5 and full.any()
    np.testing.assert_array_equal(out[black], patches[black])
    np.testing.assert_array_equal(out[full], 255 - patches[full])
    grey = np.array([[[[100, 100, 100]]]], np.uint8)
    patch = np.array([[[[30, 100, 250]]]], np.uint8)
    assert blend(grey, patch).tolist() == [[[[70, 0, 150]]]]


def test_shapes_dtypes_labels_and_splits_are_kept(digits, textured) -> None:
    assert textured.name == "digits-texture" and textured.note == digits.note
    for part in ("train", "test"):
        source, made = digits.split(part), textured.split(part)
        assert made.images.shape == source.images.shape and made.images.dtype == np.uint8
        np.testing.assert_array_equal(made.labels, source.labels)
    # in colour: the grey digits' channels now differ on most pixels
    images = textured.train.images
    assert (images[..., 0] != images[..., 2]).mean() > 0.5


def test_the_photographs_are_colour_and_of_bounded_size() -> None:
    for photo in photographs():
        assert photo.dtype == np.uint8 and photo.shape[2] == 3
        assert min(photo.shape[:2]) <= 320 and min(photo.shape[:2]) >= 2 * BLOCK
        assert np.abs(photo[..., 0].astype(int) - photo[..., 2]).mean() > 10


def test_the_texture_variants_are_named_data_sets() -> None:
    assert {"mnist-texture", "usps-texture"} <= set(data.names())
    result = CliRunner().invoke(main, ["samples", "--dataset", "nope", "--out", "unused"])
    assert "mnist-texture" in result.output and "usps-texture" in result.output


@pytest.mark.parametrize(
    ("name", "expected"), [("mnist-texture", "mnist: expected"), ("usps-texture", "usps: expected")]
)
def test_missing_digit_files_are_one_line(tmp_path, name, expected) -> None:
    with pytest.raises(DatasetError, match=expected):
        data.load(name, tmp_path)
    result = CliRunner().invoke(
        main, ["samples", "--dataset", name, "--data-dir", str(tmp_path), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert expected in line and str(tmp_path) in line


@pytest.mark.parametrize(("name", "sizes"), [("mnist", (5000, 5000)), ("usps", (7291, 2007))])
def test_real_digits_keep_their_split_and_labels(shared_data, name, sizes) -> None:
    folder = shared_data(name)
    grey, textured = data.load(name, folder), data.load(f"{name}-texture", folder)
    assert (len(textured.train), len(textured.test)) == sizes
    for part in ("train", "test"):
        np.testing.assert_array_equal(textured.split(part).labels, grey.split(part).labels)
    patches = cut_patches(patch_boxes(len(grey.test), "test"))
    np.testing.assert_array_equal(textured.test.images, blend(grey.test.images, patches))

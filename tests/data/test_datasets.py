import hashlib

import numpy as np
import pytest

from dann_serve import data
from dann_serve.data import DatasetError
from dann_serve.data.digits import load_digits
from dann_serve.data.fonts import generate


def _digest(split) -> str:
    return hashlib.sha256(split.images.tobytes() + split.labels.tobytes()).hexdigest()


def test_fonts_is_byte_identical_for_the_same_seed() -> None:
    assert _digest(generate(60, seed=3)) == _digest(generate(60, seed=3))


def test_fonts_differs_between_seeds() -> None:
    assert _digest(generate(60, seed=3)) != _digest(generate(60, seed=4))


def test_fonts_layout_and_balanced_labels() -> None:
    split = generate(200, seed=0)
    assert split.images.shape == (200, 32, 32, 3)
    assert split.images.dtype == np.uint8
    assert np.bincount(split.labels, minlength=10).tolist() == [20] * 10
    # Colour pairs vary: the images are not grey and not all alike.
    assert split.images.std() > 30
    assert (split.images[..., 0] != split.images[..., 1]).mean() > 0.5


def test_digits_splits_are_fixed_and_disjoint() -> None:
    first, second = load_digits(), load_digits()
    assert first.train.images.shape == (1297, 32, 32, 3)
    assert first.test.images.shape == (500, 32, 32, 3)
    np.testing.assert_array_equal(first.test.labels, second.test.labels)
    # MNIST framing: black border from the padding, grey (equal) channels.
    assert first.train.images[:, :4].max() == 0
    assert np.array_equal(first.train.images[..., 0], first.train.images[..., 2])
    train_rows = {image.tobytes() for image in first.train.images}
    assert not any(image.tobytes() in train_rows for image in first.test.images)


def test_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(DatasetError, match=r"unknown data set 'nope'.*digits.*fonts"):
        data.load("nope")


def test_split_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        load_digits().split("validation")

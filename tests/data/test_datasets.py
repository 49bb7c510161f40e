import hashlib

import numpy as np
import pytest

from dann_serve import data
from dann_serve.data import DatasetError
from dann_serve.data.digits import load_digits
from dann_serve.data.fonts import generate
from dann_serve.data.tight import tight_crop, tight_variant


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


def test_the_fonts_test_split_is_read_without_rendering_the_training_one() -> None:
    from dann_serve.data.fonts import DEFAULT_SEED, TEST_SIZE, fonts_test, load_fonts

    before = load_fonts.cache_info()
    # what export's parity checks and monitor reference, and `evaluate --split test`, read
    for split in (data.load_test_split("fonts"), data.load_split("fonts", split="test")):
        assert len(split) == TEST_SIZE
        assert np.bincount(split.labels, minlength=10).tolist() == [TEST_SIZE // 10] * 10
        # the very split the whole domain holds (load_fonts() reads the same cache entry)
        assert split is fonts_test(DEFAULT_SEED)
    after = load_fonts.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_digits_splits_are_fixed_and_disjoint() -> None:
    first, second = load_digits(), load_digits()
    assert first.train.images.shape == (1297, 32, 32, 3)
    assert first.test.images.shape == (500, 32, 32, 3)
    np.testing.assert_array_equal(first.test.labels, second.test.labels)
    # MNIST framing: the ink inside the 28x28 frame, black padding around it, grey
    # (equal) channels.
    images = first.train.images
    assert images[:, :2].max() == 0 and images[:, -2:].max() == 0
    assert images[:, :, :2].max() == 0 and images[:, :, -2:].max() == 0
    assert np.array_equal(first.train.images[..., 0], first.train.images[..., 2])
    train_rows = {image.tobytes() for image in first.train.images}
    assert not any(image.tobytes() in train_rows for image in first.test.images)


def test_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(DatasetError, match=r"unknown data set 'nope'.*digits.*fonts"):
        data.load("nope")


def test_split_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        load_digits().split("validation")


def _on_paper(images: np.ndarray) -> np.ndarray:
    """Per image: is it framed on light paper (its 2-pixel padding one light colour)?"""
    corner = images[:, :1, :1]
    frame = np.concatenate([images[:, :2], images[:, -2:], images[:, :, :2].swapaxes(1, 2)], 1)
    return (frame == corner).all(axis=(1, 2, 3)) & (corner[:, 0, 0, 0] >= 128)


def _ink_layout(images: np.ndarray, light_ink: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the longer side of the ink's box (pixels more than half-way from the
    background to the ink) and the centre of mass's distance from pixel (16, 16), all
    the ink counted (the rule weighs only the strong ink: blurred digits differ by up
    to a pixel)."""
    ink = images[..., 0].astype(float)
    ink = ink if light_ink else 255 - ink
    ink -= ink[:, :1, :1]  # the background, from the corner (the padding)
    strong = ink > ink.max(axis=(1, 2), keepdims=True) / 2
    rows, columns = strong.any(axis=2), strong.any(axis=1)
    sides = (
        np.maximum(
            31 - rows[:, ::-1].argmax(axis=1) - rows.argmax(axis=1),
            31 - columns[:, ::-1].argmax(axis=1) - columns.argmax(axis=1),
        )
        + 1
    )
    mass = np.clip(ink, 0, None)
    centre = (
        np.stack([(mass.sum(axis=axis) * np.arange(32)).sum(axis=1) for axis in (2, 1)], axis=1)
        / mass.sum(axis=(1, 2))[:, None]
    )
    return sides, np.abs(centre - 16).max(axis=1)


def test_a_tight_variant_is_black_on_white_and_framed_like_mnist() -> None:
    """Digits cut tight to the ink, shrunk to 16x16 and inverted come back framed as
    the training digits are: box of 20, centre of mass on (16, 16), on paper all round."""
    digits = load_digits()
    tight = tight_variant(digits)
    assert tight.name == "digits-tight" and tight.train.images.shape == digits.train.images.shape
    np.testing.assert_array_equal(tight.test.labels, digits.test.labels)
    images = tight.test.images
    framed = _on_paper(images)
    assert framed.mean() > 0.99
    sides, off_centre = _ink_layout(images[framed], light_ink=False)
    assert np.mean(sides == 20) > 0.95 and np.mean(off_centre < 1) > 0.95


def test_tight_crop_cuts_to_the_ink_and_inverts() -> None:
    grey = np.zeros((28, 28), np.uint8)
    grey[5:25, 10:14] = 255  # a 1: 20 tall, 4 wide
    cut = tight_crop(grey)
    ink_rows, ink_columns = (np.flatnonzero((cut < 128).any(axis=axis)) for axis in (1, 0))
    assert cut.shape == (16, 16) and cut.dtype == np.uint8
    assert (ink_rows[0], ink_rows[-1]) == (0, 15)  # the longer side spans the square
    assert 2 <= len(ink_columns) <= 4 and abs(ink_columns.mean() - 7.5) <= 0.5  # shape kept
    assert (tight_crop(np.zeros((28, 28), np.uint8)) == 255).all()  # no ink: blank paper


def test_the_tight_variants_are_named_data_sets() -> None:
    assert {"mnist-tight", "usps-tight"} <= set(data.names())


def test_the_embedded_digits_have_shifted_variants_that_need_no_files(tmp_path) -> None:
    """``make demo-drift`` serves them offline: each is ``digits`` remade, same labels."""
    digits = data.load("digits", tmp_path)
    for name in ("digits-tight", "digits-texture", "digits-rotated"):
        shifted = data.load(name, tmp_path)  # an empty data folder: nothing is read
        assert shifted.test.images.shape == digits.test.images.shape, name
        assert (shifted.test.labels == digits.test.labels).all(), name
        assert not (shifted.test.images == digits.test.images).all(), name


def test_rotated_digits_are_turned_anticlockwise_about_the_centre() -> None:
    from dann_serve.data.rotated import ANGLE, rotate

    image = np.zeros((32, 32, 3), np.uint8)
    image[4:16, 15:17] = 255  # a bar from the centre up
    turned = rotate(image, 90.0)
    assert ANGLE == 30.0 and turned.shape == image.shape and turned.dtype == np.uint8
    rows, columns = np.nonzero(turned[..., 0] > 128)
    assert rows.min() >= 14 and rows.max() <= 17  # now lying across the middle
    assert columns.max() <= 17 and columns.min() <= 6  # pointing left: anticlockwise


@pytest.mark.parametrize("name", ["mnist", "usps"])
def test_real_digits_cut_tight_are_framed_like_mnist(shared_data, name) -> None:
    """Real MNIST and USPS digits cut tight, black on white: framed back, their ink sits
    where MNIST's does (MNIST's own digits, measured alike, for comparison), on paper
    all round."""
    tight = data.load(f"{name}-tight", shared_data(name)).test.images[:500]
    framed = _on_paper(tight)
    assert framed.mean() > 0.99
    sides, off_centre = _ink_layout(tight[framed], light_ink=False)
    assert np.mean(sides == 20) > 0.9 and np.mean(off_centre < 1) > 0.9
    mnist = data.load("mnist", shared_data("mnist")).test.images[:500]
    sides, off_centre = _ink_layout(mnist, light_ink=True)
    assert np.mean(sides == 20) > 0.9 and np.mean(off_centre < 1) > 0.9

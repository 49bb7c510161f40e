import numpy as np
import pytest
import tensorflow as tf

from dann_serve.training.augment import MAX_SHIFT, random_shift


@pytest.fixture()
def squares() -> tf.Tensor:
    """64 images of a bright 4x4 square in the middle of a dark 32x32 field."""
    images = np.zeros((64, 32, 32, 3), np.float32)
    images[:, 14:18, 14:18] = 1.0
    return tf.constant(images)


def _centres(images: np.ndarray) -> np.ndarray:
    grid = np.arange(32, dtype=np.float64)
    mass = images[..., 0].sum(axis=(1, 2))
    rows = (images[..., 0].sum(axis=2) * grid).sum(axis=1) / mass
    cols = (images[..., 0].sum(axis=1) * grid).sum(axis=1) / mass
    return np.stack([rows, cols], axis=1) - 15.5


def test_shifts_are_a_function_of_seed_and_step(squares) -> None:
    """What makes --resume draw the same shifts as an uninterrupted run."""
    first = random_shift(squares, seed=3, step=tf.constant(7, tf.int64)).numpy()
    again = random_shift(squares, seed=3, step=tf.constant(7, tf.int64)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, random_shift(squares, 3, tf.constant(8, tf.int64)).numpy())
    assert not np.array_equal(first, random_shift(squares, 4, tf.constant(7, tf.int64)).numpy())


def test_each_image_moves_by_its_own_bounded_offset(squares) -> None:
    shifted = random_shift(squares, seed=0, step=tf.constant(0, tf.int64)).numpy()
    centres = _centres(shifted)
    assert np.abs(centres).max() <= MAX_SHIFT * 32 + 1e-3
    assert len(np.unique(np.round(centres, 3), axis=0)) > 50  # not one offset for the batch
    assert np.abs(centres).max() > 2.0  # the range is used, not a no-op
    # A shape away from the border keeps its ink: it is moved, not cropped or scaled.
    np.testing.assert_allclose(shifted.sum(axis=(1, 2, 3)), 48.0, rtol=1e-4)

import itertools

import numpy as np
import pytest
import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.training.augment import MAX_SHIFT, ShiftSchedule, random_shift, training_batches


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


def test_shift_is_bilinear_with_edge_pixels_repeated() -> None:
    """TensorFlow's projective transform (bilinear, fill mode NEAREST) with the same
    offsets is the definition the separable resampling must match."""
    images = tf.random.stateless_uniform([16, 32, 32, 3], seed=[1, 2])
    step = tf.constant(5, tf.int64)
    offsets = tf.random.stateless_uniform(
        [16, 2], seed=tf.constant([3, 5], tf.int64), minval=-MAX_SHIFT, maxval=MAX_SHIFT
    ) * tf.constant([32.0, 32.0])
    ones, zeros = tf.ones([16]), tf.zeros([16])
    reference = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.stack(
            [ones, zeros, -offsets[:, 1], zeros, ones, -offsets[:, 0], zeros, zeros], axis=1
        ),
        output_shape=[32, 32],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    shifted = random_shift(images, seed=3, step=step)
    np.testing.assert_allclose(shifted.numpy(), reference.numpy(), atol=1e-5)


@pytest.fixture()
def pixel_pairs() -> tuple[np.ndarray, tf.data.Dataset]:
    """8 uint8 images of distinct pixels, and one step's pair of them (4 source, then 4
    target images)."""
    pixels = (np.arange(8 * 32 * 32 * 3) % 251).astype(np.uint8).reshape(8, 32, 32, 3)
    pairs = tf.data.Dataset.from_tensors(((pixels[:4], np.zeros(4)), (pixels[4:], np.zeros(4))))
    return pixels, pairs


def test_training_batches_are_unit_range_and_shifted_by_their_step(pixel_pairs) -> None:
    """Batch k is step k's: its shifts are those of (seed, k), whichever batch the
    stream starts from, so a restored iterator draws what an unbroken one would."""
    pixels, pairs = pixel_pairs
    batches = list(training_batches(pairs.repeat(3), seed=9, shift=ShiftSchedule(total_steps=1)))
    plain = next(iter(training_batches(pairs, seed=9, shift=None)))
    unit = np.concatenate([plain[0][0].numpy(), plain[1][0].numpy()])
    np.testing.assert_allclose(unit, pixels / 255.0, rtol=1e-6)
    for step, ((xs, _), (xt, _)) in enumerate(batches):
        expected = random_shift(tf.constant(unit), 9, tf.constant(step, tf.int64)).numpy()
        np.testing.assert_allclose(np.concatenate([xs, xt]), expected, atol=1e-6)
    assert not np.allclose(batches[0][0][0], batches[1][0][0])


def test_ramped_shifts_grow_from_none_to_full_size_by_mid_run() -> None:
    ramp = ShiftSchedule(total_steps=1000, gamma=10.0)
    sizes = [float(ramp(tf.constant(step, tf.int64))) for step in range(0, 1001, 50)]
    assert sizes[0] == 0.0  # the first step sees the digits where they are
    assert all(a < b for a, b in itertools.pairwise(sizes[:11]))  # growing to mid-run
    assert all(a <= b for a, b in itertools.pairwise(sizes))
    assert sizes[10] == pytest.approx(MAX_SHIFT, rel=0.02)  # about full size from mid-run
    assert max(sizes) <= np.float32(MAX_SHIFT)
    assert ShiftSchedule(total_steps=1000)(tf.constant(0, tf.int64)) == np.float32(MAX_SHIFT)


def test_a_ramped_stream_shifts_each_batch_by_its_steps_size(pixel_pairs) -> None:
    pixels, pairs = pixel_pairs
    ramp = ShiftSchedule(total_steps=4, gamma=10.0)
    batches = list(training_batches(pairs.repeat(4), seed=9, shift=ramp))
    unit = pixels / np.float32(255.0)
    first = np.concatenate([batches[0][0][0], batches[0][1][0]])
    np.testing.assert_allclose(first, unit, atol=1e-6)  # step 0: not moved
    for step, ((xs, _), (xt, _)) in enumerate(batches):
        at = tf.constant(step, tf.int64)
        expected = random_shift(tf.constant(unit), 9, at, ramp(at)).numpy()
        np.testing.assert_allclose(np.concatenate([xs, xt]), expected, atol=1e-6)
    assert not np.allclose(batches[3][0][0], pixels[:4] / 255.0, atol=1e-3)


def test_a_run_ramps_its_shifts_unless_told_not_to_or_saved_before_the_ramp() -> None:
    assert ShiftSchedule.of(TrainConfig(steps=300)) == ShiftSchedule(300, gamma=10.0)
    assert ShiftSchedule.of(TrainConfig(steps=300, shift_ramp=False)) == ShiftSchedule(300)
    assert ShiftSchedule.of(TrainConfig(augment=False)) is None
    saved = {k: v for k, v in vars(TrainConfig()).items() if k != "shift_ramp"}
    assert TrainConfig.from_dict(saved).shift_ramp is False  # it trained without
    assert TrainConfig.from_dict({**saved, "shift_ramp": True}).shift_ramp is True

"""The batches a training step reads, and their random shifts.

The shift of every image is a pure function of the run's seed and the step
counter, so a resumed run draws exactly the shifts an uninterrupted run would
have drawn, with no random-generator state to checkpoint.

Preparing a batch (uint8 -> [0, 1], shifts) is tf.data's work, done on its threads
while the previous step computes: it needs nothing the step produces, and inside the
step it cost as much as the weight update (bench/train_throughput.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.data.pipeline import PREFETCH, to_unit_range
from dann_serve.training.schedules import AdaptationSchedule, progress

MAX_SHIFT = 0.1
"""Largest shift, as a fraction of the image side (3.2 px on a 32 px image)."""


@dataclass(frozen=True)
class ShiftSchedule:
    """The largest shift at a step, as a fraction of the image side.

    Without ``gamma`` it is :data:`MAX_SHIFT` throughout. With it, it grows from 0 to
    :data:`MAX_SHIFT` along the adaptation schedule's curve (lambda's, ``gamma`` its
    steepness): a moved, resampled digit is a harder example, and in the first steps,
    when the network has yet to learn what a digit looks like, the shifts slowed the
    source's own learning (docs/PERFORMANCE.md); the invariance they teach is learnt
    once the shapes are, and from mid-run on they are at 98.7% of their size or more.
    """

    total_steps: int
    gamma: float | None = None

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        if self.gamma is None:
            return tf.constant(MAX_SHIFT)
        return MAX_SHIFT * AdaptationSchedule(self.gamma)(progress(step, self.total_steps))

    @classmethod
    def of(cls, config: TrainConfig) -> ShiftSchedule | None:
        """A run's shifts: none without ``augment``, ramped with ``shift_ramp``."""
        if not config.augment:
            return None
        return cls(config.steps, config.gamma if config.shift_ramp else None)


def training_batches(
    pairs: tf.data.Dataset,
    seed: int,
    shift: Callable[[tf.Tensor], tf.Tensor] | None,
    augment_source: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
) -> tf.data.Dataset:
    """``pairs`` (``paired_batches``) with float32 images in [0, 1], each image shifted
    by up to ``shift(step)`` of its side (a :class:`ShiftSchedule`; None: not shifted),
    then the source half passed through ``augment_source(images, seed)`` (the run's
    method's ``augment_source`` hook; ``seed`` is int64 ``[2]``, the run's seed and the
    step); element ``k`` is the batch of step ``k``.

    The offsets are drawn for the whole global batch, source half first, so that every
    replica of a distributed step slices the images one device would have used; so is
    the source augmentation.
    """

    # Traced as written, like the step (docs/EXTENDING.md): AutoGraph's rewrite of this
    # function and the methods' hooks cost a fifth of a second at every start.
    @tf.autograph.experimental.do_not_convert
    def prepare(step: tf.Tensor, pair: tuple) -> tuple:
        (xs, ys), (xt, yt) = pair
        images = to_unit_range(tf.concat([xs, xt], axis=0))
        if shift is not None:
            images = random_shift(images, seed, step, shift(step))
        xs, xt = tf.split(images, 2)
        if augment_source is not None:
            xs = augment_source(xs, step_seed(seed, step))
        return (xs, ys), (xt, yt)

    return pairs.enumerate().map(prepare).prefetch(PREFETCH)


def step_seed(seed: int | tf.Tensor, step: int | tf.Tensor) -> tf.Tensor:
    """int64 ``[2]``, the run's seed and the step: what every random draw of a step is
    made from (``tf.random.stateless_*``), so that a resumed run, which restores the
    step but no generator's state, draws what an unbroken one would have."""
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])


def random_shift(
    images: tf.Tensor, seed: int, step: tf.Tensor, max_shift: float | tf.Tensor = MAX_SHIFT
) -> tf.Tensor:
    """Each image of ``[N, H, W, C]`` moved by its own uniform sub-pixel offset.

    Bilinear resampling; pixels shifted in from outside repeat the nearest edge
    pixel, which for digits is background, so no artificial border appears.
    Bilinear resampling is separable: the rows move, then the columns, each a blend
    of two gathered copies (a third of the time of TensorFlow's general projective
    transform, with the same result).
    """
    offsets = tf.random.stateless_uniform(
        [tf.shape(images)[0], 2],
        seed=step_seed(seed, step),
        minval=-max_shift,
        maxval=max_shift,
    ) * tf.cast(tf.shape(images)[1:3], tf.float32)  # (dy, dx) in pixels
    moved = _move_rows(images, offsets[:, 0])
    columns_first = tf.transpose(moved, [0, 2, 1, 3])
    return tf.transpose(_move_rows(columns_first, offsets[:, 1]), [0, 2, 1, 3])


def _move_rows(images: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
    """``images`` ``[N, H, ...]`` with row ``i`` of image ``n`` read from position
    ``i - offsets[n]``, between its two neighbouring rows, clamped to the first and last."""
    shape = tf.shape(images)
    count, height = shape[0], shape[1]
    position = tf.cast(tf.range(height), tf.float32)[None, :] - offsets[:, None]
    below = tf.floor(position)
    weight = tf.reshape(position - below, [-1, 1])
    below = tf.cast(below, tf.int32)
    first_row = (tf.range(count) * height)[:, None]  # of each image, in the flat rows
    rows = tf.reshape(images, [count * height, -1])
    lower, upper = (
        tf.gather(rows, tf.reshape(first_row + tf.clip_by_value(index, 0, height - 1), [-1]))
        for index in (below, below + 1)
    )
    return tf.reshape(lower + weight * (upper - lower), shape)

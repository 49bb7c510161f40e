"""Random shifts of training images, drawn statelessly from (seed, step).

The shift of every image is a pure function of the run's seed and the step
counter, so a resumed run draws exactly the shifts an uninterrupted run would
have drawn, with no random-generator state to checkpoint.
"""

from __future__ import annotations

import tensorflow as tf

MAX_SHIFT = 0.1
"""Largest shift, as a fraction of the image side (3.2 px on a 32 px image)."""


def random_shift(
    images: tf.Tensor,
    seed: int,
    step: tf.Tensor,
    max_shift: float = MAX_SHIFT,
    rows: tf.Tensor | None = None,
    total: int | None = None,
) -> tf.Tensor:
    """Each image of ``[N, H, W, C]`` moved by its own uniform sub-pixel offset.

    Bilinear resampling; pixels shifted in from outside repeat the nearest edge
    pixel, which for digits is background, so no artificial border appears.

    The offsets are drawn for the global batch of ``total`` images (default: these
    ``N``), and ``images`` take those of their ``rows`` in it: a replica holding a
    share of the batch shifts its images exactly as one device holding all would.
    """
    count = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1:3], tf.float32)
    offsets = (
        tf.random.stateless_uniform(
            [count if total is None else total, 2],
            seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)]),
            minval=-max_shift,
            maxval=max_shift,
        )
        * size
    )  # (dy, dx) in pixels
    if rows is not None:
        offsets = tf.gather(offsets, rows)
    ones, zeros = tf.ones([count]), tf.zeros([count])
    # Output pixel (x, y) reads input pixel (x - dx, y - dy).
    transforms = tf.stack(
        [ones, zeros, -offsets[:, 1], zeros, ones, -offsets[:, 0], zeros, zeros], axis=1
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )

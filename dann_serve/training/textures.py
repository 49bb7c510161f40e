"""Procedural colour textures, and source digits blended onto them the MNIST-M way.

A target of digits on coloured, textured backgrounds (MNIST-M: digits blended into
patches of photographs) is far from a grey source in ways no shift or contrast
change reaches: the digit is drawn by where the background's colour is inverted,
not by ink. Training on source digits blended onto many random textures (domain
randomisation) shows the network that kind of image before it meets the target.

The textures are made, not sampled from photographs: a sum of smooth random colour
noise at a few scales (blobs of 16 down to 2 pixels, the coarse ones stronger, as in
natural images), a linear colour gradient, a random saturation (from grey to fully
coloured) and a random brightness range. Photographs would risk sharing images with
a target built from the same collection, which would flatter the result.

Every draw is a function of the run's seed and the step, like the shifts of
:mod:`dann_serve.training.augment`: a resumed run draws the same textures.
"""

from __future__ import annotations

import math

import tensorflow as tf

GRIDS = (2, 4, 8, 16)
"""Noise grid sides on a 32 px image: blobs of 16, 8, 4 and 2 pixels."""
MIN_CONTRAST = 0.3
"""Smallest brightness range of a texture (its largest is the whole of [0, 1])."""
_STREAM = 0x54455854  # folded into the step's seed: the textures' draws, apart from the shifts'


def blend_on_textures(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Each image of ``[N, H, W, 3]`` in ``[0, 1]`` blended onto its own random texture,
    per channel ``|texture - image|`` (MNIST-M's recipe): where the image is 0 the
    texture shows as it is, where it is 1 inverted. ``seed``: int64 ``[2]``."""
    return tf.abs(random_textures(tf.shape(images), seed) - images)


def random_textures(shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """``shape`` (``[N, H, W, 3]``) float32 textures in ``[0, 1]``, drawn from ``seed``."""
    count, height, width = shape[0], shape[1], shape[2]
    seeds = tf.random.experimental.stateless_split(
        tf.random.experimental.stateless_fold_in(seed, _STREAM), len(GRIDS) + 2
    )
    texture = _gradients(count, height, width, seeds[0])
    looks = tf.random.stateless_uniform([count, len(GRIDS) + 3], seeds[1])
    for octave, grid in enumerate(GRIDS):
        noise = tf.random.stateless_uniform([count, grid, grid, 3], seeds[octave + 2], -1.0, 1.0)
        smooth = tf.image.resize(noise, tf.stack([height, width]), method="bilinear")
        # Coarse octaves weigh more (amplitude ~ 1 / sqrt(frequency)), each image its own mix.
        amplitude = looks[:, octave] * math.sqrt(GRIDS[0] / grid)
        texture += amplitude[:, None, None, None] * smooth
    saturation, low, contrast = (looks[:, len(GRIDS) + k, None, None, None] for k in range(3))
    grey = tf.reduce_mean(texture, axis=-1, keepdims=True)
    texture = grey + saturation * (texture - grey)
    lowest = tf.reduce_min(texture, axis=[1, 2, 3], keepdims=True)
    spread = tf.reduce_max(texture, axis=[1, 2, 3], keepdims=True) - lowest
    contrast = MIN_CONTRAST + (1.0 - MIN_CONTRAST) * contrast
    return low * (1.0 - contrast) + contrast * (texture - lowest) / tf.maximum(spread, 1e-6)


def _gradients(count: tf.Tensor, height: tf.Tensor, width: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """``[N, H, W, 3]`` linear blends between two random colours, each image along its
    own random direction, scaled by a random strength."""
    draws = tf.random.stateless_uniform([count, 8], seed)
    angle = 2.0 * math.pi * draws[:, 0]
    rows = tf.cast(tf.range(height), tf.float32) / tf.cast(tf.maximum(height - 1, 1), tf.float32)
    columns = tf.cast(tf.range(width), tf.float32) / tf.cast(tf.maximum(width - 1, 1), tf.float32)
    along = (
        tf.cos(angle)[:, None, None] * columns[None, None, :]
        + tf.sin(angle)[:, None, None] * rows[None, :, None]
    )  # [N, H, W]
    along -= tf.reduce_min(along, axis=[1, 2], keepdims=True)
    along /= tf.maximum(tf.reduce_max(along, axis=[1, 2], keepdims=True), 1e-6)
    start, end = draws[:, None, None, 1:4], draws[:, None, None, 4:7]
    blend = start + (end - start) * along[..., None]
    return draws[:, 7, None, None, None] * blend

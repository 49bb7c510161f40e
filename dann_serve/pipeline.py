"""tf.data streams over in-memory uint8 splits.

Each split's arrays are held once, as constants; the streams shuffle and batch
*indices* and gather images per batch, so no shuffle buffer keeps a second copy of
the pixels. Pixels stay uint8 until the training step divides by 255, which keeps
the host-side work per image to a gather.
"""

from __future__ import annotations

import tensorflow as tf

from dann_serve.datasets import Split


def shuffled_batches(split: Split, batch_size: int, seed: int) -> tf.data.Dataset:
    """An endless stream of ``(uint8 images, int64 labels)`` batches, reshuffled per epoch."""
    if len(split) < batch_size:
        raise ValueError(f"a split of {len(split)} images cannot fill a batch of {batch_size}")
    images = tf.constant(split.images)
    labels = tf.constant(split.labels)
    return (
        tf.data.Dataset.range(len(split))
        .shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .map(lambda index: (tf.gather(images, index), tf.gather(labels, index)))
    )


def paired_batches(source: Split, target: Split, batch_size: int, seed: int) -> tf.data.Dataset:
    """Half a batch from each domain per step: ``((xs, ys), (xt, yt))``.

    Target labels travel along only so that nothing needs a second pass over the
    data; the training step never reads them.
    """
    half = batch_size // 2
    return tf.data.Dataset.zip(
        shuffled_batches(source, half, seed), shuffled_batches(target, half, seed + 1)
    ).prefetch(tf.data.AUTOTUNE)


def ordered_batches(split: Split, batch_size: int = 500) -> tf.data.Dataset:
    """The split once, in order, as ``(uint8 images, labels)`` for evaluation."""
    return tf.data.Dataset.from_tensor_slices((split.images, split.labels)).batch(batch_size)


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1], the model's input contract."""
    return tf.cast(images, tf.float32) / 255.0

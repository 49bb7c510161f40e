"""Where an image lands in ``predict_image``'s 32x32 input: the client's framing and
fitting (:mod:`dann_client.framing`, ``dann_client.preprocessing._fit_square``) in
TensorFlow ops.

Every decision is taken in whole numbers from the decoded pixels, exactly as the client
takes it: the background colour (each channel's most common edge value), whether the
background is plain, the ink's box, the scaled size and the corner the centre of mass
puts it at. So both sides crop and place every image alike; only the resize itself
differs, by rounding: Pillow's bilinear filter is emulated with ``ScaleAndTranslate``'s
triangle kernel (widened when shrinking, as Pillow's is), width first, each pass
rounded to whole levels as Pillow rounds its passes.
"""

from __future__ import annotations

import tensorflow as tf

from dann_client.contract import (
    BACKGROUND_NEAR,
    FRAME_BOX,
    FRAME_CENTRE,
    IMAGE_SIZE,
    INK_CONTRAST,
    MNIST_SIZE,
)

_FIRST = (IMAGE_SIZE - MNIST_SIZE) // 2  # where MNIST's 28x28 frame begins in 32x32
_LEVELS = 256


def border_colour(pixels: tf.Tensor) -> tf.Tensor:
    """int32 ``[C]``: each channel's most common value along the four edges of uint8
    ``[H, W, C]`` (corners counted twice; the lowest such value on a tie)."""
    edges = tf.concat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]], axis=0)
    channels = tf.shape(edges)[1]
    offsets = tf.range(channels) * _LEVELS
    counts = tf.math.bincount(
        tf.reshape(tf.cast(edges, tf.int32) + offsets, [-1]),
        minlength=channels * _LEVELS,
        maxlength=channels * _LEVELS,
    )
    counts = tf.reshape(counts, [channels, _LEVELS])
    most = tf.reduce_max(counts, axis=1, keepdims=True)
    return tf.reduce_min(tf.where(tf.equal(counts, most), tf.range(_LEVELS), _LEVELS), axis=1)


def frame_or_fit(rgb: tf.Tensor) -> tf.Tensor:
    """uint8 RGB ``[H, W, 3]`` -> ``[32, 32, 3]``: framed like MNIST's digits where the
    background is plain, else fitted whole (the client's rule, :mod:`dann_client.framing`)."""
    colour = border_colour(rgb)
    distance = tf.reduce_max(tf.abs(tf.cast(rgb, tf.int32) - colour), axis=2)
    contrast = tf.reduce_max(distance)
    threshold = tf.maximum(BACKGROUND_NEAR, contrast // 2)
    out = tf.cond(
        _plain(distance, contrast, threshold),
        lambda: _frame(rgb, colour, distance, threshold),
        lambda: fit_square(rgb, colour),
    )
    return tf.ensure_shape(out, [IMAGE_SIZE, IMAGE_SIZE, 3])


def _count(condition: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(condition, tf.int64))


def _plain(distance: tf.Tensor, contrast: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """The client's ``framing.place`` test: a quarter of the edge pixels background, the
    strongest ink at least ``INK_CONTRAST``, at most half of the pixels in between."""
    edges = tf.concat([distance[0], distance[-1], distance[:, 0], distance[:, -1]], axis=0)
    edge_ground = 4 * _count(edges <= BACKGROUND_NEAR) >= tf.cast(tf.size(edges), tf.int64)
    between = _count((distance > BACKGROUND_NEAR) & (distance <= threshold))
    half = 2 * between <= tf.cast(tf.size(distance), tf.int64)
    return edge_ground & (contrast >= INK_CONTRAST) & half


def _frame(rgb: tf.Tensor, colour: tf.Tensor, distance: tf.Tensor, threshold) -> tf.Tensor:
    """The ink's box scaled to ``FRAME_BOX`` on its longer side, its centre of mass on
    pixel ``FRAME_CENTRE``, on the background colour."""
    ink = distance > threshold
    rows = tf.where(tf.reduce_any(ink, axis=1))[:, 0]
    columns = tf.where(tf.reduce_any(ink, axis=0))[:, 0]
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    mass = tf.cast(tf.where(ink, distance, 0), tf.int64)[top:bottom, left:right]
    total = tf.reduce_sum(mass)
    tall, wide = bottom - top, right - left
    longer = tf.maximum(tall, wide)
    height = tf.maximum((2 * tall * FRAME_BOX + longer) // (2 * longer), 1)
    width = tf.maximum((2 * wide * FRAME_BOX + longer) // (2 * longer), 1)
    row = _corner(tf.reduce_sum(mass, axis=1), total, tall, height)
    column = _corner(tf.reduce_sum(mass, axis=0), total, wide, width)
    crop = tf.cast(rgb[top:bottom, left:right], tf.float32)
    zero = tf.zeros([3])
    scaled = _resize_axis(crop, 1, tf.cast(wide, tf.int32), 0, zero, tf.cast(width, tf.int32))
    scaled = _resize_axis(scaled, 0, tf.cast(tall, tf.int32), 0, zero, tf.cast(height, tf.int32))
    padding = [
        [row, IMAGE_SIZE - row - height],
        [column, IMAGE_SIZE - column - width],
        [0, 0],
    ]
    fill = tf.cast(colour, tf.float32)
    return tf.cast(tf.pad(scaled - fill, tf.cast(padding, tf.int32)) + fill, tf.uint8)


def _corner(mass: tf.Tensor, total: tf.Tensor, side: tf.Tensor, scaled: tf.Tensor) -> tf.Tensor:
    """The client's ``framing._corner`` in int64: where the scaled box starts so that its
    centre of mass lands on ``FRAME_CENTRE``, kept inside the 28x28 frame."""
    moment = tf.reduce_sum(mass * tf.range(side, dtype=tf.int64))
    numerator, denominator = (2 * moment + total) * scaled, 2 * total * side
    corner = FRAME_CENTRE + 1 - (numerator + denominator - 1) // denominator
    return tf.clip_by_value(corner, _FIRST, _FIRST + MNIST_SIZE - scaled)


def fit_square(rgb: tf.Tensor, fill: tf.Tensor) -> tf.Tensor:
    """uint8 RGB ``[H, W, 3]`` -> ``[32, 32, 3]``: the client's ``_fit_square``.

    The long side is resized to 32 first, then the short one as if it were centred in
    a square of the long side's length filled with ``fill`` (int32 ``[3]``, the
    background colour); the square itself is never built, so an image of 1 x 100,000
    pixels costs what its pixels cost.
    """
    height, width = tf.shape(rgb)[0], tf.shape(rgb)[1]
    pixels = tf.cast(rgb, tf.float32)
    fill = tf.cast(fill, tf.float32)
    wide = width >= height
    side = tf.maximum(height, width)

    def rows_first() -> tf.Tensor:
        shrunk = _resize_axis(pixels, 1, side, 0, tf.zeros([3]))
        return _resize_axis(shrunk, 0, side, (side - height) // 2, fill)

    def columns_first() -> tf.Tensor:
        shrunk = _resize_axis(pixels, 0, side, 0, tf.zeros([3]))
        return _resize_axis(shrunk, 1, side, (side - width) // 2, fill)

    out = tf.cond(wide, rows_first, columns_first)
    return tf.cast(out, tf.uint8)


def _resize_axis(
    pixels: tf.Tensor,
    axis: int,
    side: tf.Tensor,
    offset: tf.Tensor,
    fill: tf.Tensor,
    size: tf.Tensor | int = IMAGE_SIZE,
) -> tf.Tensor:
    """Resize ``axis`` of float ``[H, W, 3]`` to ``size`` with Pillow's bilinear filter,
    as if its ``n`` pixels sat at ``offset`` in a line of ``side`` pixels of ``fill``
    (``side = n``, ``offset = 0``: a plain resize); the other axis is kept. Rounded to
    whole levels, as each of Pillow's passes is.

    ``ScaleAndTranslate`` (tf.image.resize's kernel) normalises each output's weights
    over the input it reaches, as Pillow does over the padded line; so the pixels minus
    ``fill`` are given a margin of ``fill`` (zeros) wide enough that every output whose
    window touches the image sees the same window as in the padded line, and outputs
    beyond it (all weights zero) come out as ``fill``.
    """
    n = tf.shape(pixels)[axis]
    scale = tf.cast(size, tf.float32) / tf.cast(side, tf.float32)
    margin = 2 * (side // size + 1) + 2
    before = tf.minimum(offset, margin)
    after = tf.minimum(side - n - offset, margin)
    padding = tf.stack([[0, 0], [0, 0], [0, 0]])
    padding = tf.tensor_scatter_nd_update(padding, [[axis]], [[before, after]])
    shifted = tf.pad(pixels - fill, padding)[None]
    translation = tf.cast(offset - before, tf.float32) * scale
    if axis == 0:
        shape = tf.stack([size, tf.shape(pixels)[1]])
        scales, translations = tf.stack([scale, 1.0]), tf.stack([translation, 0.0])
    else:
        shape = tf.stack([tf.shape(pixels)[0], size])
        scales, translations = tf.stack([1.0, scale]), tf.stack([0.0, translation])
    resized = tf.raw_ops.ScaleAndTranslate(
        images=shifted,
        size=shape,
        scale=scales,
        translation=translations,
        kernel_type="triangle",
        antialias=True,
    )[0]
    return tf.clip_by_value(tf.floor(resized + fill + 0.5), 0.0, 255.0)

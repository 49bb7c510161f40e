"""Where an image lands in ``predict_image``'s 32x32 input: the client's framing and
fitting (:mod:`dann_client.framing`, ``dann_client.preprocessing._fit_square``) in
TensorFlow ops.

Every decision is taken in whole numbers from the decoded pixels, exactly as the client
takes it: the background colour (each channel's most common edge value), whether the
background is plain, the ink's box, the scaled size and the corner the centre of mass
puts it at. So both sides crop and place every image alike; only the resize itself
differs, by rounding: Pillow's bilinear filter is emulated with ``ScaleAndTranslate``'s
triangle kernel (widened when shrinking, as Pillow's is), width first, each pass
rounded to whole levels as Pillow rounds its passes. Images of the model's own sizes
pass through as laid out when they follow the rule already (:func:`lay_out_own_size`,
the client's ``framing.reframe``), decided by the same whole-number test.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from dann_client.contract import (
    BACKGROUND_NEAR,
    FRAME_BOX,
    FRAME_BOX_SLACK,
    FRAME_CENTRE,
    FRAME_CENTRE_SLACK,
    IMAGE_SIZE,
    INK_CONTRAST,
    MNIST_FIRST,
    MNIST_SIZE,
)

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
    colour, distance, plain, threshold = _measure(rgb)
    out = tf.cond(
        plain,
        lambda: _frame(rgb, colour, _ink(distance, threshold)),
        lambda: fit_square(rgb, colour),
    )
    return tf.ensure_shape(out, [IMAGE_SIZE, IMAGE_SIZE, 3])


def lay_out_own_size(rgb: tf.Tensor) -> tf.Tensor:
    """uint8 RGB ``[S, S, 3]`` of the model's own sizes (28 or 32) -> ``[32, 32, 3]``: as
    laid out (28x28 padded with its background colour) when the background is not plain
    or the ink is where framing would put it already, else framed: the client's
    ``framing.reframe``, with the same whole-number test."""
    colour, distance, plain, threshold = _measure(rgb)
    first = (IMAGE_SIZE - tf.shape(rgb)[0]) // 2

    def laid_out() -> tf.Tensor:
        fill = tf.cast(colour, tf.int32)
        padding = [[first, first], [first, first], [0, 0]]
        return tf.cast(tf.pad(tf.cast(rgb, tf.int32) - fill, padding) + fill, tf.uint8)

    def plain_image() -> tf.Tensor:
        ink = _ink(distance, threshold)
        return tf.cond(
            _in_place(ink, tf.cast(first, tf.int64)), laid_out, lambda: _frame(rgb, colour, ink)
        )

    out = tf.cond(plain, plain_image, laid_out)
    return tf.ensure_shape(out, [IMAGE_SIZE, IMAGE_SIZE, 3])


def _measure(rgb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The background colour, each pixel's difference from it, whether the background
    is plain, and the ink threshold (:mod:`dann_client.framing`)."""
    colour = border_colour(rgb)
    distance = tf.reduce_max(tf.abs(tf.cast(rgb, tf.int32) - colour), axis=2)
    contrast = tf.reduce_max(distance)
    threshold = tf.maximum(BACKGROUND_NEAR, contrast // 2)
    return colour, distance, _plain(distance, contrast, threshold), threshold


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


@dataclass(frozen=True)
class _Axis:
    """The ink along one axis (int64 scalars): where its box starts and how long it is,
    its moment about the start, and the scaled length and corner framing gives it."""

    start: tf.Tensor
    side: tf.Tensor
    moment: tf.Tensor
    scaled: tf.Tensor
    corner: tf.Tensor


@dataclass(frozen=True)
class _Ink:
    """A plain image's ink (the client's ``framing.Placement``): down the rows and along
    the columns, and its total mass."""

    rows: _Axis
    columns: _Axis
    total: tf.Tensor


def _ink(distance: tf.Tensor, threshold: tf.Tensor) -> _Ink:
    """The ink's box, mass and placement: the longer side scaled to ``FRAME_BOX``, the
    centre of mass on pixel ``FRAME_CENTRE``."""
    ink = distance > threshold
    rows = tf.where(tf.reduce_any(ink, axis=1))[:, 0]
    columns = tf.where(tf.reduce_any(ink, axis=0))[:, 0]
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    mass = tf.cast(tf.where(ink, distance, 0), tf.int64)[top:bottom, left:right]
    total = tf.reduce_sum(mass)
    tall, wide = bottom - top, right - left
    longer = tf.maximum(tall, wide)
    axes = []
    for start, side, sums in (
        (top, tall, tf.reduce_sum(mass, axis=1)),
        (left, wide, tf.reduce_sum(mass, axis=0)),
    ):
        scaled = tf.maximum((2 * side * FRAME_BOX + longer) // (2 * longer), 1)
        moment = tf.reduce_sum(sums * tf.range(side, dtype=tf.int64))
        axes.append(_Axis(start, side, moment, scaled, _corner(moment, total, side, scaled)))
    return _Ink(axes[0], axes[1], total)


def _in_place(ink: _Ink, first: tf.Tensor) -> tf.Tensor:
    """The client's ``framing.reframe`` test, for an image laid out ``first`` pixels into
    32x32: the box's longer side within ``FRAME_BOX_SLACK`` of ``FRAME_BOX``, and on each
    axis the centre of mass within ``FRAME_CENTRE_SLACK`` of where framing puts it (both
    times ``2 * side * total``, as ``framing._near``)."""
    longer = tf.maximum(ink.rows.side, ink.columns.side)
    near = tf.abs(longer - FRAME_BOX) <= FRAME_BOX_SLACK
    for axis in (ink.rows, ink.columns):
        now = 2 * axis.side * ((first + axis.start) * ink.total + axis.moment)
        placed = (
            2 * axis.side * ink.total * axis.corner
            + (2 * axis.moment + ink.total) * axis.scaled
            - axis.side * ink.total
        )
        near &= tf.abs(now - placed) <= FRAME_CENTRE_SLACK * 2 * axis.side * ink.total
    return near


def _frame(rgb: tf.Tensor, colour: tf.Tensor, ink: _Ink) -> tf.Tensor:
    """The ink's box scaled and placed as :func:`_ink` says, on the background colour."""
    rows, columns = ink.rows, ink.columns
    crop = tf.cast(
        rgb[rows.start : rows.start + rows.side, columns.start : columns.start + columns.side],
        tf.float32,
    )
    zero = tf.zeros([3])
    height, width = tf.cast(rows.scaled, tf.int32), tf.cast(columns.scaled, tf.int32)
    scaled = _resize_axis(crop, 1, tf.cast(columns.side, tf.int32), 0, zero, width)
    scaled = _resize_axis(scaled, 0, tf.cast(rows.side, tf.int32), 0, zero, height)
    padding = [
        [rows.corner, IMAGE_SIZE - rows.corner - rows.scaled],
        [columns.corner, IMAGE_SIZE - columns.corner - columns.scaled],
        [0, 0],
    ]
    fill = tf.cast(colour, tf.float32)
    return tf.cast(tf.pad(scaled - fill, tf.cast(padding, tf.int32)) + fill, tf.uint8)


def _corner(moment: tf.Tensor, total: tf.Tensor, side: tf.Tensor, scaled: tf.Tensor) -> tf.Tensor:
    """The client's ``framing._corner`` in int64: where the scaled box starts so that its
    centre of mass lands on ``FRAME_CENTRE``, kept inside the 28x28 frame."""
    numerator, denominator = (2 * moment + total) * scaled, 2 * total * side
    corner = FRAME_CENTRE + 1 - (numerator + denominator - 1) // denominator
    return tf.clip_by_value(corner, MNIST_FIRST, MNIST_FIRST + MNIST_SIZE - scaled)


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

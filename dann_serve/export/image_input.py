"""``predict_image``'s input step: encoded image files to uint8 ``[N, 32, 32, 3]`` in the graph.

So that any language (or ``curl`` with a base64 PNG) can ask the model, the exported
graph itself follows the client's preprocessing rules (:mod:`dann_client.preprocessing`,
docs/ARCHITECTURE.md), which stay the reference:

- grey 28x28 and 32x32 images take the exact array path (28x28 padded with 2 black
  pixels per side; the channel repeated), so MNIST-like files agree bit for bit;
- transparency is flattened by the ``auto`` rule (:func:`flatten_alpha`), with
  Pillow's own integer ``alpha_composite`` arithmetic;
- anything else is fitted into the 32x32 square, padded with the median colour of
  its border, and resized with the triangle (bilinear) filter widened when shrinking,
  as Pillow's ``BILINEAR`` is: long side first, each pass rounded to whole levels.

What TensorFlow's decoders cannot do is not emulated: EXIF orientation is ignored
(no TensorFlow decoder reads it), a GIF's transparent pixels come out black and the
colour-key transparency of an RGB or grey PNG (``tRNS`` without alpha) is dropped,
16-bit PNGs are decoded through 16 bits as Pillow does but JPEG's IDCT and chroma
upsampling are libjpeg-turbo's, the accurate integer one as in Pillow. Animated GIFs
give their first frame, although TensorFlow decodes all of them; ``dann-serve serve``
bounds that before the graph runs (:mod:`dann_serve.serving.images`).
"""

from __future__ import annotations

import tensorflow as tf

from dann_client.contract import IMAGE_SIZE, INPUT_SHAPE, LIGHT_INK_LUMINANCE, LUMINANCE_WEIGHTS

MNIST_SIDE = 28
# How many images one call decodes at once (tf.map_fn's parallel_iterations): enough
# for two cores, few enough that a batch of large images is not held whole in memory.
PARALLEL_IMAGES = 4

_PNG8, _PNG16, _JPEG, _OTHER = 0, 1, 2, 3  # decoders, picked by the file's first bytes
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_BIT_DEPTH = 24  # offset of the bit depth in a PNG: signature, IHDR length and type, size
_PNG_HEADER = 26  # through IHDR's width, height, bit depth and colour type
_GREY, _RGB = 0, 2  # PNG colour types


def decode_images(contents: tf.Tensor) -> tf.Tensor:
    """string ``[N]`` of encoded PNG/JPEG/GIF/BMP files -> uint8 ``[N, 32, 32, 3]``.

    Most files sent are 8-bit PNGs the size of the model's input, RGB 32x32 (what
    ``dann-client`` sends over REST) or grey 28x28 or 32x32 (MNIST-like): their
    header says so, and a loop that only decodes and pads them is three times faster
    than the general one, whose branches cost their every node per image even when
    not taken. The rest take :func:`decode_image`; both results are stitched back in
    the batch's order.
    """
    simple = _simple_pngs(contents)
    parts = [tf.cast(tf.where(chosen)[:, 0], tf.int32) for chosen in (simple, ~simple)]
    spec = tf.TensorSpec(INPUT_SHAPE, tf.uint8)
    images = [
        tf.map_fn(
            function,
            tf.gather(contents, part),
            fn_output_signature=spec,
            parallel_iterations=PARALLEL_IMAGES,
        )
        for function, part in ((_decode_simple, parts[0]), (decode_image, parts[1]))
    ]
    return tf.ensure_shape(tf.dynamic_stitch(parts, images), [None, *INPUT_SHAPE])


def _simple_pngs(contents: tf.Tensor) -> tf.Tensor:
    """bool ``[N]``: 8-bit PNGs, RGB 32x32 or grey 28x28 or 32x32, read from IHDR."""
    head = tf.strings.substr(contents, 0, _PNG_HEADER)  # shorter for shorter files
    header = tf.io.decode_raw(head, tf.uint8, fixed_length=_PNG_HEADER)  # zero-padded
    header = tf.cast(tf.reshape(header, [-1, _PNG_HEADER]), tf.int32)

    def number(start: int) -> tf.Tensor:  # a big-endian uint32 of IHDR (below 2**31 here)
        column = header[:, start : start + 4]
        return ((column[:, 0] * 256 + column[:, 1]) * 256 + column[:, 2]) * 256 + column[:, 3]

    width, height = number(16), number(20)
    colour = header[:, PNG_BIT_DEPTH + 1]
    png8 = _is(tf.strings.substr(head, 0, 8), PNG_SIGNATURE) & _is(header[:, PNG_BIT_DEPTH], 8)
    side = _is(width, height) & (_is(width, IMAGE_SIZE) | _is(width, MNIST_SIDE))
    grey = _is(colour, _GREY) & side
    rgb = _is(colour, _RGB) & _is(width, IMAGE_SIZE) & _is(height, IMAGE_SIZE)
    return png8 & (grey | rgb)


def _decode_simple(content: tf.Tensor) -> tf.Tensor:
    """A simple PNG (:func:`_simple_pngs`): grey repeated to RGB by the decoder, and a
    28x28 one padded with 2 black pixels per side, which is the exact array path."""
    pixels = tf.io.decode_png(content, channels=3)
    pad = (IMAGE_SIZE - tf.shape(pixels)[0]) // 2
    return tf.pad(pixels, [[pad, pad], [pad, pad], [0, 0]])


def decode_image(content: tf.Tensor) -> tf.Tensor:
    """One encoded image -> uint8 ``[32, 32, 3]`` by the client's rules."""
    pixels = _decode(content)
    height, width, channels = tf.unstack(tf.shape(pixels))
    side_ok = (_is(height, MNIST_SIDE) & _is(width, MNIST_SIDE)) | (
        _is(height, IMAGE_SIZE) & _is(width, IMAGE_SIZE)
    )
    # Shapes are fixed after a cond, never inside a branch: Grappler may run a branch's
    # shape check on the input of the branch not taken.
    image = tf.cond(
        _is(channels, 1) & side_ok, lambda: _layout_grey(pixels), lambda: _to_square(pixels)
    )
    return tf.ensure_shape(image, INPUT_SHAPE)


def _to_square(pixels: tf.Tensor) -> tf.Tensor:
    """Flattened to RGB, then fitted to 32x32 unless it is that size already."""
    rgb = tf.cond(_is(tf.shape(pixels)[2], 3), lambda: pixels, lambda: flatten_alpha(pixels))
    shape = tf.shape(rgb)
    same = _is(shape[0], IMAGE_SIZE) & _is(shape[1], IMAGE_SIZE)
    return tf.cond(same, lambda: rgb, lambda: fit_square(rgb))


def _is(tensor: tf.Tensor, value) -> tf.Tensor:
    """Element-wise equality that stays a tensor in every graph mode (``==`` does not
    when a TF1 graph, as TensorFlow Serving's loader builds it, is the default)."""
    return tf.equal(tensor, value)


def _decode(content: tf.Tensor) -> tf.Tensor:
    """uint8 ``[H, W, C]`` (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) of one file, by the
    decoder its first bytes call for (a PNG's bit depth is its 25th byte)."""
    # Zero bytes appended, so that a file too short for the offsets reaches a decoder,
    # which says what is wrong with it.
    head = tf.strings.join([tf.strings.substr(content, 0, _PNG_HEADER), b"\0" * _PNG_HEADER])
    png = _is(tf.strings.substr(head, 0, 3), b"\x89PN")
    deep = _is(tf.strings.substr(head, PNG_BIT_DEPTH, 1), b"\x10")
    index = tf.where(
        png,
        tf.where(deep, _PNG16, _PNG8),
        tf.where(_is(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff"), _JPEG, _OTHER),
    )
    return tf.switch_case(
        index,
        [
            lambda: tf.io.decode_png(content, channels=0),
            lambda: _decode_png16(content),
            lambda: tf.io.decode_jpeg(content, channels=0, dct_method="INTEGER_ACCURATE"),
            lambda: _decode_other(content),
        ],
    )


def _decode_png16(content: tf.Tensor) -> tf.Tensor:
    """A 16-bit PNG brought to 8 bits as Pillow does: grey is scaled (rounded value /
    257), the other modes keep their high byte."""
    wide = tf.cast(tf.io.decode_png(content, channels=0, dtype=tf.uint16), tf.int32)
    grey = _is(tf.shape(wide)[2], 1)
    return tf.cast(tf.where(grey, (wide * 2 + 257) // 514, wide // 256), tf.uint8)


def _decode_other(content: tf.Tensor) -> tf.Tensor:
    """GIF (first frame) and BMP; a 32-bit BMP's fourth byte is dropped, as Pillow reads
    such files as RGB. Anything else fails here with TensorFlow's "Unknown image file
    format" (INVALID_ARGUMENT)."""
    pixels = tf.io.decode_image(content, channels=0, expand_animations=False)
    return pixels[:, :, : tf.minimum(tf.shape(pixels)[2], 3)]


def _layout_grey(pixels: tf.Tensor) -> tf.Tensor:
    """The exact array path of ``layout_batch``: grey 28x28 padded with 2 black pixels
    per side (32x32 unchanged), the channel repeated."""
    pad = (IMAGE_SIZE - tf.shape(pixels)[0]) // 2
    padded = tf.pad(pixels, [[pad, pad], [pad, pad], [0, 0]])
    return tf.tile(padded, [1, 1, 3])


def flatten_alpha(pixels: tf.Tensor) -> tf.Tensor:
    """uint8 ``[H, W, C]`` (C of 1, 2 or 4) -> RGB ``[H, W, 3]``, transparency flattened
    by the ``auto`` rule of :mod:`dann_client.contract` (``BACKGROUND_AUTO``)."""
    channels = tf.shape(pixels)[2]
    colour = tf.gather(pixels, tf.where(channels < 3, [0, 0, 0], [0, 1, 2]), axis=2)
    alpha = pixels[:, :, -1:]
    has_alpha = _is(channels, 2) | _is(channels, 4)
    return tf.cond(
        has_alpha & tf.reduce_any(alpha < 255),
        lambda: _composite(colour, alpha),
        lambda: colour,
    )


def _composite(colour: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """The ``auto`` rule: if the alpha-weighted mean luminance of the pixels is at least
    ``LIGHT_INK_LUMINANCE`` (light ink), black behind them, else white (also when every
    pixel is fully transparent); blended as Pillow's ``alpha_composite`` onto an opaque
    background, in its integer arithmetic."""
    rgb, a = tf.cast(colour, tf.int32), tf.cast(alpha, tf.int32)
    # In whole numbers, as the client's ``background.light_ink`` (weights in thousandths),
    # so that both decide alike at the threshold; exact in float64 below 2**53.
    luminance = tf.reduce_sum(
        tf.cast(colour, tf.int64) * tf.constant(LUMINANCE_WEIGHTS, tf.int64), axis=2, keepdims=True
    )
    total = tf.cast(tf.reduce_sum(tf.cast(a, tf.int64)), tf.float64)
    ink = tf.cast(tf.reduce_sum(tf.cast(a, tf.int64) * luminance), tf.float64)
    light = ink >= LIGHT_INK_LUMINANCE * float(sum(LUMINANCE_WEIGHTS) * 255) * total
    background = tf.where((total > 0) & light, 0, 255)
    # Pillow's AlphaComposite.c for an opaque destination: 7 extra bits, /255 by shifts.
    # The values are never negative, so floor division is the right shift.
    blend = (rgb * a + background * (255 - a)) * 128 + 128 * 128
    out = ((blend // 256 + blend) // 256) // 128
    return tf.cast(tf.where(_is(a, 0), background, out), tf.uint8)


def fit_square(rgb: tf.Tensor) -> tf.Tensor:
    """uint8 RGB ``[H, W, 3]`` -> ``[32, 32, 3]``: the client's ``_fit_square``.

    The long side is resized to 32 first, then the short one as if it were centred in
    a square of the long side's length filled with the border's median colour; the
    square itself is never built, so an image of 1 x 100,000 pixels costs what its
    pixels cost.
    """
    height, width = tf.shape(rgb)[0], tf.shape(rgb)[1]
    pixels = tf.cast(rgb, tf.float32)
    fill = border_colour(rgb)
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


def border_colour(rgb: tf.Tensor) -> tf.Tensor:
    """float32 ``[3]``: each channel's median of the four edges (corners counted twice),
    ``int(np.median)`` as the client takes it."""
    edges = tf.concat([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]], axis=0)
    ordered = tf.sort(tf.cast(edges, tf.int32), axis=0)
    last = tf.shape(ordered)[0] - 1
    middle = (ordered[last // 2] + ordered[(last + 1) // 2]) // 2
    return tf.cast(middle, tf.float32)


def _resize_axis(
    pixels: tf.Tensor, axis: int, side: tf.Tensor, offset: tf.Tensor, fill: tf.Tensor
) -> tf.Tensor:
    """Resize ``axis`` of float ``[H, W, 3]`` to 32 with Pillow's bilinear filter, as if
    its ``n`` pixels sat at ``offset`` in a line of ``side`` pixels of ``fill``; the
    other axis is kept. Rounded to whole levels, as each of Pillow's passes is.

    ``ScaleAndTranslate`` (tf.image.resize's kernel) normalises each output's weights
    over the input it reaches, as Pillow does over the padded line; so the pixels minus
    ``fill`` are given a margin of ``fill`` (zeros) wide enough that every output whose
    window touches the image sees the same window as in the padded line, and outputs
    beyond it (all weights zero) come out as ``fill``.
    """
    n = tf.shape(pixels)[axis]
    scale = tf.cast(IMAGE_SIZE, tf.float32) / tf.cast(side, tf.float32)
    margin = 2 * (side // IMAGE_SIZE + 1) + 2
    before = tf.minimum(offset, margin)
    after = tf.minimum(side - n - offset, margin)
    padding = tf.stack([[0, 0], [0, 0], [0, 0]])
    padding = tf.tensor_scatter_nd_update(padding, [[axis]], [[before, after]])
    shifted = tf.pad(pixels - fill, padding)[None]
    translation = tf.cast(offset - before, tf.float32) * scale
    if axis == 0:
        size = tf.stack([IMAGE_SIZE, tf.shape(pixels)[1]])
        scales, translations = tf.stack([scale, 1.0]), tf.stack([translation, 0.0])
    else:
        size = tf.stack([tf.shape(pixels)[0], IMAGE_SIZE])
        scales, translations = tf.stack([1.0, scale]), tf.stack([0.0, translation])
    resized = tf.raw_ops.ScaleAndTranslate(
        images=shifted,
        size=size,
        scale=scales,
        translation=translations,
        kernel_type="triangle",
        antialias=True,
    )[0]
    return tf.clip_by_value(tf.floor(resized + fill + 0.5), 0.0, 255.0)

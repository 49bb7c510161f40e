"""``predict_image``'s input step: encoded image files to uint8 ``[N, 32, 32, 3]`` in the graph.

So that any language (or ``curl`` with a base64 PNG) can ask the model, the exported
graph itself follows the client's preprocessing rules (:mod:`dann_client.preprocessing`,
docs/ARCHITECTURE.md), which stay the reference:

- grey 28x28 and 32x32 images take the exact array path (28x28 padded with 2 pixels
  per side of its background colour; the channel repeated), so MNIST-like files agree
  bit for bit;
- transparency is flattened by the ``auto`` rule (:func:`flatten_alpha`), with
  Pillow's own integer ``alpha_composite`` arithmetic;
- grey 28x28 and 32x32 and RGB 32x32 pass unchanged (but for that padding) when they
  follow the framing rule already or their background is not plain, and are framed
  otherwise; anything else is framed like MNIST's digits where its background is plain,
  else fitted whole into the 32x32 square (:mod:`dann_serve.export.image_layout`, the
  client's :mod:`dann_client.framing`).

What TensorFlow's decoders cannot do is not emulated: EXIF orientation is ignored
(no TensorFlow decoder reads it), a GIF's transparent pixels come out black and the
colour-key transparency of an RGB or grey PNG (``tRNS`` without alpha) is dropped,
16-bit PNGs are decoded through 16 bits as Pillow does but JPEG's IDCT and chroma
upsampling are libjpeg-turbo's, the accurate integer one as in Pillow. Animated GIFs
give their first frame, although TensorFlow decodes all of them; ``dann-serve serve``
bounds that before the graph runs (:mod:`dann_serve.serving.images`).
"""

from __future__ import annotations

import struct
import zlib

import tensorflow as tf

from dann_client.contract import (
    IMAGE_SIZE,
    INPUT_SHAPE,
    LAID_OUT_PNG_TEXT,
    LIGHT_INK_LUMINANCE,
    LUMINANCE_WEIGHTS,
    MNIST_SIZE,
)
from dann_serve.export.image_layout import frame_or_fit, lay_out_own_size

# How many images one call decodes at once (tf.map_fn's parallel_iterations): enough
# for two cores, few enough that a batch of large images is not held whole in memory.
PARALLEL_IMAGES = 4

_PNG8, _PNG16, _JPEG, _OTHER = 0, 1, 2, 3  # decoders, picked by the file's first bytes
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_BIT_DEPTH = 24  # offset of the bit depth in a PNG: signature, IHDR length and type, size
_PNG_HEADER = 26  # through IHDR's width, height, bit depth and colour type
_GREY, _RGB = 0, 2  # PNG colour types
_IHDR_END = len(PNG_SIGNATURE) + 25  # the IHDR chunk: length, type, 13 bytes, CRC
_TEXT = b"tEXt" + "\0".join(LAID_OUT_PNG_TEXT).encode("latin-1")
_LAID_OUT_CHUNK = struct.pack(">I", len(_TEXT) - 4) + _TEXT + struct.pack(">I", zlib.crc32(_TEXT))
"""The chunk that marks the client's own files as laid out (``LAID_OUT_PNG_TEXT``), in
full, as it follows IHDR in them."""
_MARKED, _SIMPLE, _GENERAL = 0, 1, 2  # the three loops of decode_images


def decode_images(contents: tf.Tensor) -> tf.Tensor:
    """string ``[N]`` of encoded PNG/JPEG/GIF/BMP files -> uint8 ``[N, 32, 32, 3]``.

    Most files sent are 8-bit PNGs the size of the model's input, RGB 32x32 (what
    ``dann-client`` sends over REST, marked as laid out) or grey 28x28 or 32x32
    (MNIST-like): their header says so, and loops that only decode them (the marked
    ones) or decode and lay them out are faster than the general one, whose branches
    cost their every node per image even when not taken. The rest take
    :func:`decode_image`; the results are stitched back in the batch's order.
    """
    kinds = _kinds(contents)
    parts = [tf.cast(tf.where(_is(kinds, kind))[:, 0], tf.int32) for kind in range(3)]
    spec = tf.TensorSpec(INPUT_SHAPE, tf.uint8)
    images = [
        tf.map_fn(
            function,
            tf.gather(contents, part),
            fn_output_signature=spec,
            parallel_iterations=PARALLEL_IMAGES,
        )
        for function, part in zip(
            (_decode_marked, _decode_simple, decode_image), parts, strict=True
        )
    ]
    return tf.ensure_shape(tf.dynamic_stitch(parts, images), [None, *INPUT_SHAPE])


def _kinds(contents: tf.Tensor) -> tf.Tensor:
    """int32 ``[N]``, read from IHDR: ``_MARKED`` for an 8-bit RGB 32x32 PNG whose IHDR
    is followed by ``_LAID_OUT_CHUNK``; ``_SIMPLE`` for the other 8-bit PNGs, RGB 32x32
    or grey 28x28 or 32x32; ``_GENERAL`` for the rest."""
    head = tf.strings.substr(contents, 0, _PNG_HEADER)  # shorter for shorter files
    header = tf.io.decode_raw(head, tf.uint8, fixed_length=_PNG_HEADER)  # zero-padded
    header = tf.cast(tf.reshape(header, [-1, _PNG_HEADER]), tf.int32)

    def number(start: int) -> tf.Tensor:  # a big-endian uint32 of IHDR (below 2**31 here)
        column = header[:, start : start + 4]
        return ((column[:, 0] * 256 + column[:, 1]) * 256 + column[:, 2]) * 256 + column[:, 3]

    width, height = number(16), number(20)
    colour = header[:, PNG_BIT_DEPTH + 1]
    png8 = _is(tf.strings.substr(head, 0, 8), PNG_SIGNATURE) & _is(header[:, PNG_BIT_DEPTH], 8)
    side = _is(width, height) & (_is(width, IMAGE_SIZE) | _is(width, MNIST_SIZE))
    grey = _is(colour, _GREY) & side
    rgb = _is(colour, _RGB) & _is(width, IMAGE_SIZE) & _is(height, IMAGE_SIZE)
    mark = _is(tf.strings.substr(contents, _IHDR_END, len(_LAID_OUT_CHUNK)), _LAID_OUT_CHUNK)
    simple = tf.where(png8 & (grey | rgb), _SIMPLE, _GENERAL)
    return tf.where(png8 & rgb & mark, _MARKED, simple)


def _decode_marked(content: tf.Tensor) -> tf.Tensor:
    """A file marked as laid out (``_MARKED``): its pixels as they are."""
    return tf.io.decode_png(content, channels=3)


def _decode_simple(content: tf.Tensor) -> tf.Tensor:
    """A simple PNG (:func:`_simple_pngs`): grey repeated to RGB by the decoder, then
    laid out or framed as the model's own sizes are (the exact array path when laid
    out)."""
    return lay_out_own_size(tf.io.decode_png(content, channels=3))


def decode_image(content: tf.Tensor) -> tf.Tensor:
    """One encoded image -> uint8 ``[32, 32, 3]`` by the client's rules."""
    pixels = _decode(content)
    height, width, channels = tf.unstack(tf.shape(pixels))
    side_ok = (_is(height, MNIST_SIZE) & _is(width, MNIST_SIZE)) | (
        _is(height, IMAGE_SIZE) & _is(width, IMAGE_SIZE)
    )
    # Shapes are fixed after a cond, never inside a branch: Grappler may run a branch's
    # shape check on the input of the branch not taken.
    image = tf.cond(
        _is(channels, 1) & side_ok,
        lambda: lay_out_own_size(tf.tile(pixels[:, :, :1], [1, 1, 3])),
        lambda: _to_square(pixels),
    )
    return tf.ensure_shape(image, INPUT_SHAPE)


def _to_square(pixels: tf.Tensor) -> tf.Tensor:
    """Flattened to RGB, then framed or fitted to 32x32, or laid out as the model's own
    size when it is that size already."""
    rgb = tf.cond(_is(tf.shape(pixels)[2], 3), lambda: pixels, lambda: flatten_alpha(pixels))
    shape = tf.shape(rgb)
    same = _is(shape[0], IMAGE_SIZE) & _is(shape[1], IMAGE_SIZE)
    return tf.cond(same, lambda: lay_out_own_size(rgb), lambda: frame_or_fit(rgb))


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

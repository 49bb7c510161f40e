"""Framing: a digit reaches the network where MNIST puts its digits, whatever its crop.

The training digits follow MNIST's convention: the ink scaled so that its bounding box
is at most 20x20 (aspect kept), its centre of mass on pixel (14, 14) of 28x28, padded
to 32x32. A user's digit is often cut tight to the ink (a box from a form, a
segmenter's output) or sits small in a wide margin; fitted whole into 32x32, it fills
a frame whose training digits only occupy the middle, and accuracy falls by half.
So an image whose background is plain is framed by the same convention, and one whose
background is not (a photograph, a texture) is left to the caller to fit whole, as
cropping it to "ink" would cut a scene at random.

The rule, with the numbers of ``dann_client.contract`` (``predict_image``'s graph,
``dann_serve/export/image_layout.py``, applies it with the same integer arithmetic,
so that both sides crop and place alike and differ only in the resize's rounding):

- background colour: each channel's most common value along the four edges
  (:func:`border_colour`);
- difference of a pixel: the largest of ``|R - r|, |G - g|, |B - b|``; a pixel within
  ``BACKGROUND_NEAR`` is background; the image's largest difference is its contrast;
- plain: the contrast is at least ``INK_CONTRAST``, at least a quarter of the edge
  pixels are background (a tight crop's ink touches the edges, but not along most of
  them), and at most half of the pixels lie between background and ink (difference
  above ``BACKGROUND_NEAR`` up to the ink threshold): ink on a ground with blurred
  edges, not a continuum of tones;
- ink: difference above ``max(BACKGROUND_NEAR, contrast // 2)``; its bounding box is
  cropped, scaled with Pillow's bilinear filter (antialiased when shrinking) so that
  its longer side is ``FRAME_BOX``, and placed on the background colour so that the
  centre of mass (each ink pixel weighted by its difference) lands on pixel
  ``FRAME_CENTRE`` of 32x32, kept inside the 28x28 frame;
- the model's own sizes (:func:`reframe`): a 28x28 or 32x32 image passes through as laid
  out (28x28 padded with its background) when it is not plain or its ink is where the
  rule would put it already, within ``FRAME_BOX_SLACK`` on the box and
  ``FRAME_CENTRE_SLACK`` on the centre of mass; else it is framed like any other size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

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

_LEVELS = 256  # uint8 grey levels: one histogram bin each


def border_colour(pixels: np.ndarray) -> np.ndarray:
    """int64 ``[..., C]``: each channel's most common value along the four edges of uint8
    ``[..., H, W, C]`` (corners counted twice; the lowest such value on a tie). The
    colour an image is framed on and padded with.

    The most common value rather than the median: an image cut tight to its ink has
    ink, and the antialiased grey around it, along much of its edges, which drags a
    median off the paper (on tight crops of MNIST digits, a quarter of the medians lay
    more than 5 levels from the white paper, against 1 in 200 of the modes)."""
    edges = np.concatenate(
        [pixels[..., 0, :, :], pixels[..., -1, :, :], pixels[..., :, 0, :], pixels[..., :, -1, :]],
        axis=-2,
    )
    *lead, count, channels = edges.shape
    rows = np.moveaxis(edges, -1, -2).reshape(-1, count).astype(np.int64)
    rows += _LEVELS * np.arange(len(rows))[:, None]  # one histogram per image and channel
    counts = np.bincount(rows.ravel(), minlength=_LEVELS * len(rows)).reshape(-1, _LEVELS)
    return cast(np.ndarray, counts.argmax(axis=1).reshape(*lead, channels))


def difference(pixels: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]``: how far each pixel of uint8 ``[H, W, 3]`` is from ``colour``,
    the largest of its three channel differences (so coloured ink on a coloured ground
    counts as much as black on white)."""
    colour = np.asarray(colour, np.uint8)
    return cast(np.ndarray, (np.maximum(pixels, colour) - np.minimum(pixels, colour)).max(axis=-1))


@dataclass(frozen=True)
class Placement:
    """Where a plain image's ink goes: its box in the image (``top``, ``left``,
    ``bottom``, ``right``; the last two exclusive), its ``height`` and ``width`` once
    scaled, and the ``row`` and ``column`` of 32x32 where the scaled box's corner goes;
    and its mass (``total``) with its moments down the rows and along the columns of
    the box (``row_moment``, ``column_moment``), which put it there."""

    top: int
    left: int
    bottom: int
    right: int
    height: int
    width: int
    row: int
    column: int
    total: int
    row_moment: int
    column_moment: int


def place(pixels: np.ndarray, background: np.ndarray) -> Placement | None:
    """The ink's placement in uint8 ``[H, W, 3]`` on ``background``, or None when the
    background is not plain (module docstring)."""
    distance = difference(pixels, background)
    edges = np.concatenate([distance[0], distance[-1], distance[:, 0], distance[:, -1]])
    if 4 * np.count_nonzero(edges <= BACKGROUND_NEAR) < len(edges):
        return None
    contrast = int(distance.max())
    if contrast < INK_CONTRAST:
        return None
    threshold = max(BACKGROUND_NEAR, contrast // 2)
    between = np.count_nonzero(distance > BACKGROUND_NEAR) - np.count_nonzero(distance > threshold)
    if 2 * between > distance.size:
        return None
    ink = distance > threshold
    top, left, bottom, right = ink_box(ink)
    mass = np.where(ink, distance, 0)[top:bottom, left:right].astype(np.int64)
    total = int(mass.sum())
    longer = max(bottom - top, right - left)
    height, width = _scaled(bottom - top, longer), _scaled(right - left, longer)
    down, along = (
        int(mass.sum(axis=1) @ np.arange(bottom - top)),
        int(mass.sum(axis=0) @ np.arange(right - left)),
    )
    row = _corner(down, total, bottom - top, height)
    column = _corner(along, total, right - left, width)
    return Placement(top, left, bottom, right, height, width, row, column, total, down, along)


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the True pixels of bool ``[H, W]`` (at least
    one), the last two exclusive: the box a digit is cut to, here and wherever a digit
    is cut tight to its ink (``dann_serve.data.tight``)."""
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(columns[0]), int(rows[-1]) + 1, int(columns[-1]) + 1


def _scaled(side: int, longer: int) -> int:
    """``side * FRAME_BOX / longer`` rounded half up, at least 1, in whole numbers."""
    return max(1, (2 * side * FRAME_BOX + longer) // (2 * longer))


def _corner(moment: int, total: int, side: int, scaled: int) -> int:
    """Where the scaled box starts so that its centre of mass, ``moment / total`` pixels
    into the box of ``side`` pixels (``(c + 0.5) * scaled / side - 0.5`` once scaled),
    lands on ``FRAME_CENTRE`` rounded half up, kept inside the 28x28 frame: in whole
    numbers, ``FRAME_CENTRE + 1 - ceil((2 * moment + total) * scaled / (2 * total * side))``,
    so that the graph, which computes it in int64, places every image alike."""
    numerator, denominator = (2 * moment + total) * scaled, 2 * total * side
    corner = FRAME_CENTRE + 1 - (numerator + denominator - 1) // denominator
    return min(max(corner, MNIST_FIRST), MNIST_FIRST + MNIST_SIZE - scaled)


def frame(pixels: np.ndarray, background: np.ndarray) -> np.ndarray | None:
    """uint8 ``[H, W, 3]`` on its ``background`` colour (:func:`border_colour`) -> the
    framed uint8 ``[32, 32, 3]``, or None when the background is not plain."""
    spot = place(pixels, background)
    return None if spot is None else _framed(pixels, background, spot)


def reframe(laid_out: np.ndarray, side: int) -> np.ndarray | None:
    """A 28x28 or 32x32 image (``side``) as laid out in uint8 ``[32, 32, 3]`` (28x28:
    padded with its background by ``MNIST_FIRST`` pixels) -> the image framed, or None when
    it passes through as laid out. The image is read as given, unpadded, as a file of
    any other size is.

    The model's own sizes are how MNIST and the data sets lay digits out, so most such
    files follow the rule already, and framing them again would move their pixels for
    nothing (a fraction of a pixel of rounding). But a digit cut tight to its ink, or
    small in a wide margin, is no less so for having one of these sizes. So the image
    passes through when its background is not plain (a photograph, a texture: fitting
    it whole into 32x32 is the layout itself) or when its ink is where :func:`place`
    would put it: the box's longer side within ``FRAME_BOX_SLACK`` of ``FRAME_BOX``, and
    the centre of mass within ``FRAME_CENTRE_SLACK`` pixels of where the placement puts
    it, on each axis. Measured on MNIST's 10,000 test digits: 99.97% pass (two digits
    with faint strokes, whose ink above half the contrast spans 14 and 16 pixels, and
    one whose centre is 1.45 pixels off). Whole numbers throughout, as in the graph.
    """
    first = (IMAGE_SIZE - side) // 2
    pixels = laid_out[first : first + side, first : first + side]
    background = border_colour(pixels)
    spot = place(pixels, background)
    if spot is None:
        return None
    tall, wide = spot.bottom - spot.top, spot.right - spot.left
    if abs(max(tall, wide) - FRAME_BOX) <= FRAME_BOX_SLACK and all(
        _near(first + start, side, moment, spot.total, corner, scaled)
        for start, side, moment, corner, scaled in (
            (spot.top, tall, spot.row_moment, spot.row, spot.height),
            (spot.left, wide, spot.column_moment, spot.column, spot.width),
        )
    ):
        return None
    return _framed(pixels, background, spot)


def _near(start: int, side: int, moment: int, total: int, corner: int, scaled: int) -> bool:
    """Whether the centre of mass, now ``start + moment / total``, lies within
    ``FRAME_CENTRE_SLACK`` pixels of where the placement puts it, ``corner + (moment /
    total + 0.5) * scaled / side - 0.5`` (:func:`_corner`): both times ``2 * side *
    total``, so that the comparison is exact."""
    now = 2 * side * (start * total + moment)
    placed = 2 * side * total * corner + (2 * moment + total) * scaled - side * total
    return abs(now - placed) <= FRAME_CENTRE_SLACK * 2 * side * total


def _framed(pixels: np.ndarray, background: np.ndarray, spot: Placement) -> np.ndarray:
    """The ink's box of ``pixels`` scaled and placed as ``spot`` says, on ``background``."""
    from PIL import Image

    ink = pixels[spot.top : spot.bottom, spot.left : spot.right]
    crop = Image.fromarray(np.ascontiguousarray(ink))
    if crop.size != (spot.width, spot.height):
        crop = crop.resize((spot.width, spot.height), Image.Resampling.BILINEAR)
    out = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    out[...] = background
    out[spot.row : spot.row + spot.height, spot.column : spot.column + spot.width] = np.asarray(
        crop
    )
    return out

"""``mnist-tight``, ``usps-tight``: handwritten digits as people often crop them.

A user's digit is often a box cut from a form or a segmenter's output: cut tight to
the ink, so that the digit touches the edges along its longer side, scaled to a small
square, black ink on white paper. These variants make such images from a named grey
data set (light ink on black, laid out like MNIST): each image's ink (pixels above
``BACKGROUND_NEAR``, the framing's tolerance for background) is cropped to its
bounding box, centred on a square of paper as long as the box's longer side (the
shape kept), resized to 16x16 (antialiased) and inverted, then read by the same rule
as a user's file of that size
(:func:`dann_client.preprocessing.lay_out_images`, which frames it). They measure what
the framing recovers: the same digits reach the model framed as the training data are
only as far as the rule finds their ink and background.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dann_client.contract import BACKGROUND_NEAR
from dann_client.framing import ink_box
from dann_client.preprocessing import lay_out_images
from dann_serve.data.domain import Domain, Split

SIDE = 16
SUFFIX = "-tight"


def tight_crop(grey: np.ndarray, side: int = SIDE) -> np.ndarray:
    """uint8 ``[H, W]`` light ink on black -> uint8 ``[side, side]`` black ink on white,
    cut to the ink's bounding box, its shape kept: the ink spans the square along its
    longer side and is centred along the other.

    Stretching the box to fill the square instead would change the digit itself (a 1
    becomes a bar as wide as it is tall), which no framing can undo."""
    ink = grey > BACKGROUND_NEAR
    if not ink.any():  # no ink: a blank square of paper
        return np.full((side, side), 255, np.uint8)
    top, left, bottom, right = ink_box(ink)
    box = grey[top:bottom, left:right]
    longer = max(box.shape)
    square = np.zeros((longer, longer), np.uint8)
    top, left = (longer - box.shape[0]) // 2, (longer - box.shape[1]) // 2
    square[top : top + box.shape[0], left : left + box.shape[1]] = box
    cut = Image.fromarray(square).resize((side, side), Image.Resampling.BILINEAR)
    return 255 - np.asarray(cut)


def _tight_split(split: Split) -> Split:
    grey = split.images[..., 0]  # the named grey sets repeat one channel
    return Split(lay_out_images(np.stack([tight_crop(image) for image in grey])), split.labels)


def tight_variant(domain: Domain) -> Domain:
    """``domain``'s train and test images cut tight, black on white, 16x16, and laid out
    again; the labels and splits are the domain's own."""
    return Domain(
        domain.name + SUFFIX,
        train=_tight_split(domain.train),
        test=_tight_split(domain.test),
        note=domain.note,
    )

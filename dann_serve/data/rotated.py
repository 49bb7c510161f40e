"""``digits-rotated``, ``mnist-rotated``, ``usps-rotated``: digits turned by a fixed angle.

A form scanned askew, a camera held at a slant: the same handwriting reaches the model
turned. These variants turn each image of a named data set (laid out as its loader lays
it out: 32x32, light ink on black) by :data:`ANGLE` degrees anticlockwise about its
centre, bilinear, the corners filled with the black background. One fixed angle rather
than a random one per image: a moved input distribution the way a new scanner moves it,
the same for every image, which a model can be adapted to. Labels and the train/test
division are the data set's own.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dann_serve.data.domain import Domain, Split

SUFFIX = "-rotated"
ANGLE = 30.0


def rotate(image: np.ndarray, angle: float = ANGLE) -> np.ndarray:
    """uint8 ``[H, W, C]`` turned by ``angle`` degrees anticlockwise, same size."""
    turned = Image.fromarray(image).rotate(angle, resample=Image.Resampling.BILINEAR)
    return np.asarray(turned)


def _rotated_split(split: Split) -> Split:
    return Split(np.stack([rotate(image) for image in split.images]), split.labels)


def rotated_variant(domain: Domain) -> Domain:
    """``domain``'s train and test images turned by :data:`ANGLE`; its labels and splits."""
    return Domain(
        domain.name + SUFFIX,
        train=_rotated_split(domain.train),
        test=_rotated_split(domain.test),
        note=domain.note,
    )

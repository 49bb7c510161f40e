"""MNIST framing for small handwritten digit sets (``digits``, ``usps``).

MNIST centres each digit in a 20x20 box inside a 28x28 frame. Sets whose digits
fill their whole frame (8x8 UCI digits, 16x16 USPS) are framed the same way before
the shared 28x28 -> 32x32 layout step. Otherwise a pair of handwriting sets would
differ first of all in a zoom factor that a convolutional network cannot undo, and
a digit touching the frame's border (USPS zeros often do) would read as dark ink on
a light ground to the network's background test.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

BOX = 20
SIDE = 28


def frame_like_mnist(image: np.ndarray) -> np.ndarray:
    """A uint8 ``[H, W]`` digit, light on dark, scaled into a 20x20 box centred in 28x28."""
    box = Image.fromarray(image).resize((BOX, BOX), Image.Resampling.BICUBIC)
    margin = (SIDE - BOX) // 2
    return np.pad(np.asarray(box), margin)

"""``digits``: scikit-learn's bundled UCI handwritten digits, upscaled to MNIST layout.

The 8x8 originals (ink 0..16) are brought to 0..255 and laid out as image files are
(:func:`dann_client.preprocessing.lay_out_images`): framed the way MNIST frames its
digits, the ink scaled into a 20x20 box centred by mass in 28x28. That makes a small,
always-available handwritten target domain: light strokes on black, blurry from the
upscaling, unlike the crisp coloured ``fonts``.
"""

from __future__ import annotations

import numpy as np

from dann_client.preprocessing import lay_out_images
from dann_serve.data.domain import Domain, Split

TEST_SIZE = 500
_SPLIT_SEED = 0


def load_digits() -> Domain:
    """1,797 digits split once, by a fixed permutation, into 1,297 train and 500 test."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = lay_out_images(np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8))
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(labels))
    test, train = order[:TEST_SIZE], order[TEST_SIZE:]
    return Domain(
        name="digits",
        train=Split(images[train], labels[train]),
        test=Split(images[test], labels[test]),
    )

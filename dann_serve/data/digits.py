"""``digits``: scikit-learn's bundled UCI handwritten digits, upscaled to MNIST layout.

The 8x8 originals (ink 0..16) are scaled to a 20x20 box centred in 28x28, the way
MNIST frames its digits, and then go through the shared MNIST-layout step. That
makes a small, always-available handwritten target domain: light strokes on black,
blurry from the upscaling, unlike the crisp coloured ``fonts``.
"""

from __future__ import annotations

import numpy as np

from dann_client.preprocessing import layout_batch
from dann_serve.data.domain import Domain, Split
from dann_serve.data.framing import frame_like_mnist

TEST_SIZE = 500
_SPLIT_SEED = 0


def _framed(image8x8: np.ndarray) -> np.ndarray:
    return frame_like_mnist(np.round(image8x8 * (255.0 / 16.0)).astype(np.uint8))


def load_digits() -> Domain:
    """1,797 digits split once, by a fixed permutation, into 1,297 train and 500 test."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = layout_batch(np.stack([_framed(image) for image in bunch.images]))
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(labels))
    test, train = order[:TEST_SIZE], order[TEST_SIZE:]
    return Domain(
        name="digits",
        train=Split(images[train], labels[train]),
        test=Split(images[test], labels[test]),
    )

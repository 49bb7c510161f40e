"""The types every loader returns, and the error every loader raises.

Kept apart from the catalog so that the loaders can import them without importing
the catalog that imports the loaders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNKNOWN_LABEL = -1
"""The label of an image nobody has labelled (a folder of the user's target images)."""
COLOUR_LEVELS = 24
COLOUR_SHARE = 0.05


@dataclass(frozen=True)
class Split:
    """Images (uint8 ``[N, 32, 32, 3]``) and their labels (int64 ``[N]``).

    An unlabelled split carries :data:`UNKNOWN_LABEL` for every image, so that the
    training stream treats both kinds alike; what reports an accuracy asks
    :attr:`labelled` first and says "unknown" rather than compare with -1.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def labelled(self) -> bool:
        return len(self.labels) > 0 and bool(np.all(self.labels != UNKNOWN_LABEL))

    @classmethod
    def unlabelled(cls, images: np.ndarray) -> Split:
        return cls(images, np.full(len(images), UNKNOWN_LABEL, np.int64))


@dataclass(frozen=True)
class Domain:
    """One data set with fixed train and test splits.

    ``note`` says how the splits were made when that is not the data set's own
    train/test division (e.g. MNIST from its test files only), so that a report
    can print it beside the figures.
    """

    name: str
    train: Split
    test: Split
    note: str = ""
    skipped: tuple[str, ...] = ()  # unreadable files left out (--skip-unreadable)
    # A test split carved out of the domain's own folder (held out or sampled): its
    # files, relative to the folder. A run records them so that what needs only the
    # test images (export) reads exactly these, never the training images or files
    # added to the folder since.
    test_files: tuple[str, ...] = ()

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise ValueError(f"unknown split {name!r}: expected 'train' or 'test'")
        return self.train if name == "train" else self.test


def is_colour(images: np.ndarray) -> bool:
    """Whether more than :data:`COLOUR_SHARE` of the pixels of RGB ``images`` have
    channels further apart than :data:`COLOUR_LEVELS` grey levels: a grey scan saved
    as RGB, or a JPEG's chroma noise, has none or nearly none. Adaptation reads it to
    tell a colour target, which a grey source cannot teach, from a grey one."""
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        return False
    spread = images.max(axis=-1).astype(np.int16) - images.min(axis=-1)
    return float(np.mean(spread > COLOUR_LEVELS)) > COLOUR_SHARE


class DatasetError(Exception):
    """A data set cannot be loaded; the message names the data set and the problem."""

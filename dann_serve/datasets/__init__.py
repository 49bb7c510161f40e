"""Digit data sets behind one interface: a name gives train and test splits.

Every loader returns uint8 images already in the model's ``[N, 32, 32, 3]`` layout
(through :func:`dann_client.preprocessing.layout_batch`, the one preprocessing
step), so the training pipeline never needs to know where a domain came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Split:
    """Images (uint8 ``[N, 32, 32, 3]``) and their labels (int64 ``[N]``)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Domain:
    """One data set with fixed train and test splits."""

    name: str
    train: Split
    test: Split

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise ValueError(f"unknown split {name!r}: expected 'train' or 'test'")
        return self.train if name == "train" else self.test


class DatasetError(Exception):
    """A data set cannot be loaded; the message names the data set and the problem."""


Loader = Callable[[Path | None], Domain]


def _fonts(data_dir: Path | None) -> Domain:
    from dann_serve.datasets.fonts import load_fonts

    return load_fonts()


def _digits(data_dir: Path | None) -> Domain:
    from dann_serve.datasets.digits import load_digits

    return load_digits()


LOADERS: dict[str, Loader] = {
    "fonts": _fonts,
    "digits": _digits,
}


def names() -> list[str]:
    return sorted(LOADERS)


def load(name: str, data_dir: str | Path | None = None) -> Domain:
    """Load a data set by name; unknown names raise :class:`DatasetError`."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise DatasetError(
            f"unknown data set {name!r}: choose one of {', '.join(names())}"
        ) from None
    return loader(Path(data_dir) if data_dir is not None else None)

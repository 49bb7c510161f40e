"""Digit data sets behind one interface: a name gives train and test splits.

Every loader returns uint8 images already in the model's ``[N, 32, 32, 3]`` layout
(through :func:`dann_client.preprocessing.layout_batch`, the one preprocessing
step, or the client's image-file path for other sizes), so the training pipeline
never needs to know where a domain came from.

``fonts`` and ``digits`` need no files. The others read ``<data-dir>/<name>/``
(rule and default folder in :mod:`dann_serve.datasets.files`), one module per
file format: ``mnist`` (IDX, ``.npz``), ``matlab`` (``svhn``, ``syn``), ``mnistm``
(PNG folders), ``usps`` (HDF5); ``download`` fetches ``mnist`` and ``svhn``.
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
    """One data set with fixed train and test splits.

    ``note`` says how the splits were made when that is not the data set's own
    train/test division (e.g. MNIST from its test files only), so that a report
    can print it beside the figures.
    """

    name: str
    train: Split
    test: Split
    note: str = ""

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


# The file-based loaders import their format libraries (gzip, scipy, h5py, PIL)
# only when asked for, so that the embedded pair never pays for them.
def _mnist(data_dir: Path | None) -> Domain:
    from dann_serve.datasets.mnist import load_mnist

    return load_mnist(data_dir)


def _svhn(data_dir: Path | None) -> Domain:
    from dann_serve.datasets.matlab import load_svhn

    return load_svhn(data_dir)


def _syn(data_dir: Path | None) -> Domain:
    from dann_serve.datasets.matlab import load_syn

    return load_syn(data_dir)


def _mnistm(data_dir: Path | None) -> Domain:
    from dann_serve.datasets.mnistm import load_mnistm

    return load_mnistm(data_dir)


def _usps(data_dir: Path | None) -> Domain:
    from dann_serve.datasets.usps import load_usps

    return load_usps(data_dir)


LOADERS: dict[str, Loader] = {
    "fonts": _fonts,
    "digits": _digits,
    "mnist": _mnist,
    "svhn": _svhn,
    "syn": _syn,
    "mnistm": _mnistm,
    "usps": _usps,
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

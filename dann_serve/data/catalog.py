"""The named data sets: a name gives a :class:`Domain` with train and test splits.

``fonts`` and ``digits`` need no files. The others read ``<data-dir>/<name>/``
(rule and default folder in :mod:`dann_serve.data.datadir`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dann_serve.data.domain import DatasetError, Domain

Loader = Callable[[Path | None], Domain]


def _fonts(data_dir: Path | None) -> Domain:
    from dann_serve.data.fonts import load_fonts

    return load_fonts()


def _digits(data_dir: Path | None) -> Domain:
    from dann_serve.data.digits import load_digits

    return load_digits()


# The file-based loaders import their format libraries (gzip, scipy, h5py, PIL)
# only when asked for, so that the embedded pair never pays for them.
def _mnist(data_dir: Path | None) -> Domain:
    from dann_serve.data.mnist import load_mnist

    return load_mnist(data_dir)


def _svhn(data_dir: Path | None) -> Domain:
    from dann_serve.data.matlab import load_svhn

    return load_svhn(data_dir)


def _syn(data_dir: Path | None) -> Domain:
    from dann_serve.data.matlab import load_syn

    return load_syn(data_dir)


def _mnistm(data_dir: Path | None) -> Domain:
    from dann_serve.data.mnistm import load_mnistm

    return load_mnistm(data_dir)


def _usps(data_dir: Path | None) -> Domain:
    from dann_serve.data.usps import load_usps

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

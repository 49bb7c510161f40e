"""Data sets by name or by folder: a ``--source``/``--target`` value gives a :class:`Domain`.

``fonts`` and ``digits`` need no files. ``mnist-tight``, ``usps-tight`` and
``digits-tight`` are ``mnist``, ``usps`` and ``digits`` cut tight to the ink, black on
white (:mod:`dann_serve.data.tight`); ``mnist-texture``, ``usps-texture`` and
``digits-texture`` are their digits blended onto colour photographs as MNIST-M is made
(:mod:`dann_serve.data.texture`); ``mnist-rotated``, ``usps-rotated`` and
``digits-rotated`` are their images turned by a fixed angle (:mod:`dann_serve.data.rotated`).
The ``digits`` variants need no files either: ``make demo-drift`` serves its demo model
one of them as shifted traffic.
The other names read ``<data-dir>/<name>/``
(rule and default folder in :mod:`dann_serve.data.datadir`). A value that is a
folder (``./digits`` for a folder that shares a name) is read by
:mod:`dann_serve.data.folders`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from dann_serve.data.domain import DatasetError, Domain, Split
from dann_serve.data.folders import load_folder, read_files, read_folder, read_test_folder

Loader = Callable[[Path | None], Domain]


def _fonts(data_dir: Path | None) -> Domain:
    from dann_serve.data.fonts import load_fonts

    return load_fonts()


def _fonts_test(data_dir: Path | None) -> Split:
    from dann_serve.data.fonts import DEFAULT_SEED, fonts_test

    return fonts_test(DEFAULT_SEED)  # the cache entry load_fonts() fills


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


def _tight(base: Domain) -> Domain:
    from dann_serve.data.tight import tight_variant

    return tight_variant(base)


def _rotated(base: Domain) -> Domain:
    from dann_serve.data.rotated import rotated_variant

    return rotated_variant(base)


def _texture(base: Domain) -> Domain:
    from dann_serve.data.texture import texture_variant

    return texture_variant(base)


# Data sets made from another's images: name -> (the data set whose files it reads, how
# it remakes them). They download, and fail on missing files, as their base does.
VARIANTS: dict[str, tuple[str, Callable[[Domain], Domain]]] = {
    "mnist-tight": ("mnist", _tight),
    "usps-tight": ("usps", _tight),
    "mnist-texture": ("mnist", _texture),
    "usps-texture": ("usps", _texture),
    "mnist-rotated": ("mnist", _rotated),
    "usps-rotated": ("usps", _rotated),
    "digits-tight": ("digits", _tight),
    "digits-texture": ("digits", _texture),
    "digits-rotated": ("digits", _rotated),
}


LOADERS: dict[str, Loader] = {
    "fonts": _fonts,
    "digits": _digits,
    "mnist": _mnist,
    "svhn": _svhn,
    "syn": _syn,
    "mnistm": _mnistm,
    "usps": _usps,
}


# Data sets whose test split is made without their training split.
TEST_LOADERS: dict[str, Callable[[Path | None], Split]] = {"fonts": _fonts_test}


def names() -> list[str]:
    return sorted([*LOADERS, *VARIANTS])


def stored_as(name: str) -> str:
    """The data set whose files ``name`` reads: a variant's base, else ``name`` itself."""
    return VARIANTS[name][0] if name in VARIANTS else name


def load(name: str, data_dir: str | Path | None = None) -> Domain:
    """Load a data set by name; unknown names raise :class:`DatasetError`."""
    if name in VARIANTS:
        base, remake = VARIANTS[name]
        return remake(load(base, data_dir))
    try:
        loader = LOADERS[name]
    except KeyError:
        if "/" in name or name.startswith("."):  # meant as a folder, which is not there
            raise DatasetError(f"{name}: no such folder") from None
        raise DatasetError(
            f"unknown data set {name!r}: choose one of {', '.join(names())}, or a folder"
        ) from None
    return loader(_path(data_dir))


def _path(data_dir: str | Path | None) -> Path | None:
    return Path(data_dir) if data_dir is not None else None


def is_folder(spec: str) -> bool:
    """Whether ``spec`` means a folder: a bare data set name means the data set even if
    a folder of that name exists here (write ``./name`` for the folder)."""
    if spec in LOADERS:
        return False
    return Path(spec).expanduser().is_dir()


def canonical(spec: str) -> str:
    """``spec`` as a run records it: folders as absolute paths, so that ``--resume``,
    ``evaluate`` and ``export`` find them from any working directory."""
    return str(Path(spec).expanduser().resolve()) if is_folder(spec) else spec


def load_split(spec: str, data_dir: str | Path | None = None, split: str = "test") -> Split:
    """The images to evaluate on: a data set's ``split``, or every image of a folder
    (a folder given to evaluate on is all test images; its labels if it has them)."""
    if is_folder(spec):
        found = read_folder(Path(spec).expanduser(), progress=True)
        return found.split()
    if split == "test":
        return load_test_split(spec, data_dir)
    return load(spec, data_dir).split(split)


def load_domain(
    spec: str,
    data_dir: str | Path | None = None,
    test: str | None = None,
    *,
    role: str = "target",
    skip_unreadable: bool = False,
    progress: bool = False,
) -> Domain:
    """The domain ``spec`` names (a data set or a folder), tested on the labelled folder
    ``test`` instead of its own test split when given."""
    if is_folder(spec):
        return load_folder(
            Path(spec).expanduser(),
            Path(test).expanduser() if test else None,
            role=role,
            skip_unreadable=skip_unreadable,
            progress=progress,
        )
    domain = load(spec, data_dir)
    if test is None:
        return domain
    found = read_test_folder(Path(test).expanduser(), skip_unreadable, progress)
    return Domain(
        domain.name,
        domain.train,
        found.split(),
        f"test: the labelled folder {test}",
        tuple(found.skipped),
    )


def load_test_split(
    spec: str,
    data_dir: str | Path | None = None,
    test: str | None = None,
    *,
    files: Sequence[str] | None = None,
    skip_unreadable: bool = False,
) -> Split:
    """Only the test images of the domain ``spec`` as a run was tested on it: the
    labelled folder ``test`` if given, else the ``files`` the run recorded of a test
    split carved out of the folder ``spec``, else the domain's own test split. What
    needs no training image (export's parity checks) reads none of a folder's."""
    if test:
        return read_test_folder(Path(test).expanduser(), skip_unreadable, False).split()
    if files and is_folder(spec):
        return read_files(Path(spec).expanduser(), files, skip_unreadable=skip_unreadable)
    if spec in TEST_LOADERS:
        return TEST_LOADERS[spec](_path(data_dir))
    return load_domain(spec, data_dir, skip_unreadable=skip_unreadable).test

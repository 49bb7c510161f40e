"""Folders of the user's own images as domains.

A labelled folder has one subfolder per class, named ``0`` to ``9`` (the layout of
Keras' ``image_dataset_from_directory`` and torchvision's ``ImageFolder``); any
other folder of images is unlabelled and searched recursively. Every file goes
through the client's one preprocessing step (:func:`dann_client.preprocessing.load_image`),
so a model sees training images exactly as ``dann-client`` will later show it the
user's photos.

Without a separate test folder, a labelled folder keeps one image in
:data:`HOLDOUT_EVERY` apart for testing, chosen by a hash of its path inside the
folder: the same images whatever the seed, the order of listing or the machine.
An unlabelled target is measured (domain accuracy, predicted classes) on a fixed
sample of up to :data:`UNLABELLED_SAMPLE` of its own images. A run records the files
of either test split carved out of its folder, and :func:`read_files` reads just them
back: export never decodes the training images again, nor a file added since.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dann_client.contract import NUM_CLASSES
from dann_client.preprocessing import IMAGE_EXTENSIONS
from dann_serve.data.decode_cache import DecodeCache
from dann_serve.data.domain import UNKNOWN_LABEL, DatasetError, Domain, Split

CLASS_FOLDERS = tuple(str(digit) for digit in range(NUM_CLASSES))
HOLDOUT_EVERY = 10
UNLABELLED_SAMPLE = 2000
_SHOWN_FAILURES = 10


@dataclass(frozen=True)
class FolderImages:
    """The readable images of a folder, their labels and the files left out."""

    images: np.ndarray
    labels: np.ndarray
    files: list[str]  # relative to the folder, one per image
    skipped: list[str]

    def split(self) -> Split:
        return Split(self.images, self.labels)

    @property
    def labelled(self) -> bool:
        return self.split().labelled


def read_folder(
    folder: Path, *, skip_unreadable: bool = False, progress: bool = False
) -> FolderImages:
    """Every image of ``folder`` decoded, with its class if the folder is labelled.

    ``DatasetError`` for a folder that is empty, a labelled layout with a class
    missing or a stray subfolder, and for unreadable files unless ``skip_unreadable``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    files, labels = _listing(folder)
    if not files:
        raise DatasetError(
            f"{folder}: no image files in it or below it "
            f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    decoded = DecodeCache(folder).decode(files, progress=progress)
    if decoded.failures and not skip_unreadable:
        raise DatasetError(_unreadable_message(folder, decoded.failures))
    by_file = dict(zip(files, labels, strict=True))
    return FolderImages(
        images=decoded.images,
        labels=np.array([by_file[name] for name in decoded.readable], np.int64),
        files=decoded.readable,
        skipped=[str(folder / name) for name, _ in decoded.failures],
    )


def load_folder(
    folder: Path,
    test_folder: Path | None = None,
    *,
    role: str,
    skip_unreadable: bool = False,
    progress: bool = False,
) -> Domain:
    """A domain from a folder: train on all of it (less the held-out part of a labelled
    folder when there is no ``test_folder``), test on ``test_folder`` if given."""
    found = read_folder(folder, skip_unreadable=skip_unreadable, progress=progress)
    if role == "source" and not found.labelled:
        raise DatasetError(
            f"{folder}: the source must be labelled: one subfolder per digit, named 0 to 9"
        )
    skipped, files = list(found.skipped), np.array(found.files, dtype=object)
    if test_folder is not None:
        train, test = found.split(), read_test_folder(test_folder, skip_unreadable, progress)
        skipped += test.skipped
        note = f"test: the labelled folder {test_folder}"
        test_split, test_files = test.split(), ()
    elif found.labelled:
        held = np.array([_hash(name) % HOLDOUT_EVERY == 0 for name in found.files])
        if not held.any():  # an accuracy on no image at all would read 0
            raise DatasetError(
                f"{folder}: {len(found.files)} images, too few to hold any out for testing "
                f"(1 in {HOLDOUT_EVERY}, by a hash of its path): add images, or name a "
                f"labelled test folder with --{role}-test"
            )
        train = Split(found.images[~held], found.labels[~held])
        test_split, test_files = Split(found.images[held], found.labels[held]), tuple(files[held])
        note = (
            f"test: 1 image in {HOLDOUT_EVERY} held out by a hash of its path "
            f"({len(test_split)} of {len(found.files)})"
        )
    else:
        train = found.split()
        order = np.argsort([_hash(name) for name in found.files], kind="stable")
        sample = np.sort(order[:UNLABELLED_SAMPLE])
        test_split, test_files = Split.unlabelled(found.images[sample]), tuple(files[sample])
        note = (
            f"no labels: measured on {len(test_split)} of its own images "
            "(domain accuracy and predicted classes only)"
        )
    return Domain(str(folder), train, test_split, note, tuple(skipped), test_files)


def read_files(folder: Path, files: Sequence[str], *, skip_unreadable: bool = False) -> Split:
    """Only ``files`` of ``folder`` (paths inside it), labelled by their class folder if
    the folder is labelled: the test split a run recorded, read without decoding the
    training images again or reading any file added to the folder since."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    decoded = DecodeCache(folder).decode(files, subset=True)
    if decoded.failures and not skip_unreadable:
        raise DatasetError(_unreadable_message(folder, decoded.failures))
    if not decoded.readable:
        raise DatasetError(f"{folder}: none of its {len(files)} test image file(s) can be read")
    if not any(name in CLASS_FOLDERS for name in _subfolders(folder)):  # as _listing
        return Split.unlabelled(decoded.images)
    labels = [int(Path(name).parts[0]) for name in decoded.readable]
    return Split(decoded.images, np.array(labels, np.int64))


def read_test_folder(folder: Path, skip_unreadable: bool, progress: bool) -> FolderImages:
    found = read_folder(folder, skip_unreadable=skip_unreadable, progress=progress)
    if not found.labelled:
        raise DatasetError(
            f"{folder}: a test folder must be labelled: one subfolder per digit, named 0 to 9"
        )
    return found


def _hash(name: str) -> int:
    """A stable hash of a path inside its folder (the same on every machine and run)."""
    return zlib.crc32(name.replace(os.sep, "/").encode())


def _listing(folder: Path) -> tuple[list[str], list[int]]:
    """Image files relative to ``folder`` in sorted order, and their labels."""
    subfolders = _subfolders(folder)
    classes = [name for name in subfolders if name in CLASS_FOLDERS]
    if not classes:
        files = _images_below(folder, folder)
        return files, [UNKNOWN_LABEL] * len(files)
    _check_labelled_layout(folder, subfolders, classes)
    files, labels = [], []
    for name in CLASS_FOLDERS:
        found = _images_below(folder / name, folder)
        if not found:
            raise DatasetError(f"{folder}: class folder {name}/ holds no images")
        files += found
        labels += [int(name)] * len(found)
    return files, labels


def _subfolders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def _check_labelled_layout(folder: Path, subfolders: list[str], classes: list[str]) -> None:
    strays = [name for name in subfolders if name not in CLASS_FOLDERS and not name.startswith(".")]
    if strays:
        raise DatasetError(
            f"{folder}: a labelled folder holds only subfolders named 0 to 9, "
            f"but it also holds {', '.join(strays[:5])}"
        )
    absent = [name for name in CLASS_FOLDERS if name not in classes]
    if absent:
        raise DatasetError(
            f"{folder}: class folder(s) {', '.join(absent)} missing: a labelled folder needs "
            "one subfolder per digit, 0 to 9"
        )
    loose = [
        entry.name for entry in os.scandir(folder) if _is_image(entry.name) and entry.is_file()
    ]
    if loose:
        raise DatasetError(
            f"{folder}: {len(loose)} image(s) beside the class folders (e.g. {loose[0]}): "
            "put each image in the folder of its digit"
        )


def _images_below(start: Path, folder: Path) -> list[str]:
    found = []
    for root, dirs, names in os.walk(start):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        # One relpath per directory, not per file: a second run lists 10,000 files in
        # the time it reads their decoded pixels back.
        below = os.path.relpath(root, folder)
        prefix = "" if below == os.curdir else below + os.sep
        found += [
            prefix + name for name in sorted(names) if _is_image(name) and not name.startswith(".")
        ]
    return found


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _unreadable_message(folder: Path, failures: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{folder / name} ({reason})" for name, reason in failures[:_SHOWN_FAILURES])
    more = len(failures) - _SHOWN_FAILURES
    extra = f"; and {more} more" if more > 0 else ""
    return (
        f"{len(failures)} image file(s) cannot be read: {shown}{extra} "
        "(--skip-unreadable trains without them)"
    )

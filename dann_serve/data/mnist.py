"""``mnist``: LeCun, Cortes and Burges' MNIST from its IDX files or Keras' ``mnist.npz``.

Read from ``<data-dir>/mnist/`` (see :mod:`dann_serve.data.datadir`), trying in order:

1. the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
   ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each gzipped (``.gz``, as
   distributed and as ``--download`` fetches them) or raw: the official 60,000 / 10,000
   split;
2. Keras' ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``): the same split;
3. the two ``t10k-*`` IDX files alone. MNIST is then its 10,000 test images, split by
   index, disjointly: images 0-4,999 are the train split (for DANN, the unlabelled
   adaptation part) and 5,000-9,999 the test split (evaluation). The Domain's
   ``note`` says so, for any report. MNIST's documentation says the first 5,000 test
   images come from NIST's training set and are cleaner and easier than the last
   5,000, so the evaluation half is the harder one.

Images (white digit on black, 28x28) go through the shared MNIST-layout step.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import cast

import numpy as np

from dann_client.preprocessing import layout_batch
from dann_serve.data.datadir import checked_labels, corrupt, dataset_dir, missing
from dann_serve.data.domain import DatasetError, Domain, Split

NAME = "mnist"
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
SIDE = 28
ADAPTATION_SIZE = 5_000
"""With only the t10k files: test images ``[:ADAPTATION_SIZE]`` form the train split."""

TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
NPZ = "mnist.npz"
TEST_ONLY_NOTE = (
    "MNIST from its 10,000 test images only, split by index: 0-4,999 unlabelled "
    "adaptation (train) part, 5,000-9,999 evaluation (test) part"
)


def _find(folder: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem``, whichever exists (gzipped first, as distributed)."""
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.is_file():
            return path
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise corrupt(NAME, path, f"not a complete gzip file ({error})") from None
    except OSError as error:
        raise corrupt(NAME, path, f"cannot read ({error.strerror or error})") from None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes as uint8 ``[N]`` or ``[N, 28, 28]``, fully checked.

    The header is big-endian: the magic number (whose low byte is the number of
    dimensions), then one int32 per dimension; the byte count must match it exactly,
    so a truncated or padded file is refused instead of silently misread.
    """
    data = _read_bytes(path)
    dimensions = magic & 0xFF
    header = 4 + 4 * dimensions
    if len(data) < header:
        raise corrupt(
            NAME,
            path,
            f"truncated IDX file: {len(data)} bytes, shorter than its {header}-byte header",
        )
    (found,) = struct.unpack(">i", data[:4])
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise corrupt(NAME, path, f"bad magic number {found}, expected {magic} (IDX {kind})")
    shape = struct.unpack(f">{dimensions}i", data[4:header])
    if dimensions == 3 and shape[1:] != (SIDE, SIDE):
        raise corrupt(NAME, path, f"images are {shape[1]}x{shape[2]}, expected {SIDE}x{SIDE}")
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        problem = "truncated IDX file" if len(data) < expected else "IDX file too long"
        raise corrupt(
            NAME,
            path,
            f"{problem}: header says {' x '.join(map(str, shape))} "
            f"= {expected} bytes, file has {len(data)}",
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _idx_split(images_path: Path, labels_path: Path) -> Split:
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(labels) != len(images):
        raise corrupt(
            NAME,
            labels_path,
            f"{len(labels)} labels for the {len(images)} images of {images_path.name}",
        )
    return Split(layout_batch(images), checked_labels(NAME, labels_path, labels, len(images)))


def _npz_domain(path: Path) -> Domain:
    import zipfile

    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            absent = [key for key in keys if key not in archive.files]
            if absent:
                raise corrupt(
                    NAME, path, f"has no array {', '.join(absent)} (expected {', '.join(keys)})"
                )
            arrays = {key: archive[key] for key in keys}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise corrupt(NAME, path, f"not a readable .npz file ({error})") from None
    splits = []
    for part in ("train", "test"):
        images, labels = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE) or images.dtype != np.uint8:
            raise corrupt(
                NAME,
                path,
                f"x_{part} is {images.dtype} {list(images.shape)}, "
                f"expected uint8 [N, {SIDE}, {SIDE}]",
            )
        splits.append(Split(layout_batch(images), checked_labels(NAME, path, labels, len(images))))
    return Domain(NAME, train=splits[0], test=splits[1])


def split_test_only(test: Split) -> tuple[Split, Split]:
    """The t10k-only rule: first ``ADAPTATION_SIZE`` by index -> train, the rest -> test.

    Both parts are views of the one array, so no pixel is held twice.
    """
    if len(test) <= ADAPTATION_SIZE:
        raise DatasetError(
            f"{NAME}: only {len(test)} test images; splitting them needs "
            f"more than {ADAPTATION_SIZE}"
        )
    cut = ADAPTATION_SIZE
    return (
        Split(test.images[:cut], test.labels[:cut]),
        Split(test.images[cut:], test.labels[cut:]),
    )


def load_mnist(data_dir: Path | None) -> Domain:
    """MNIST from ``<data-dir>/mnist/``: full IDX files, else ``mnist.npz``, else t10k only."""
    folder = dataset_dir(NAME, data_dir)
    train = [_find(folder, stem) for stem in TRAIN_FILES]
    test = [_find(folder, stem) for stem in TEST_FILES]
    if any(train) and not all(train):
        absent = TRAIN_FILES[train.index(None)]
        raise missing(NAME, folder, [f"{absent}[.gz] (the other train file is there)"])
    if all(train) and all(test):
        # all found: Paths, not None
        found_train, found_test = cast(list[Path], train), cast(list[Path], test)
        return Domain(NAME, train=_idx_split(*found_train), test=_idx_split(*found_test))
    if (folder / NPZ).is_file():
        return _npz_domain(folder / NPZ)
    if all(test) and not any(train):
        adaptation, evaluation = split_test_only(_idx_split(*cast(list[Path], test)))
        return Domain(NAME, train=adaptation, test=evaluation, note=TEST_ONLY_NOTE)
    names = [f"{stem}[.gz]" for stem in (*TRAIN_FILES, *TEST_FILES)]
    raise missing(
        NAME,
        folder,
        [
            ", ".join(names),
            NPZ,
            f"{TEST_FILES[0]}[.gz] and {TEST_FILES[1]}[.gz] alone",
        ],
    )

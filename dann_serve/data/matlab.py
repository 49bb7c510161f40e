"""``svhn`` and ``syn``: cropped house numbers and SynNumbers, in SVHN's MATLAB layout.

Both are read from ``train_32x32.mat`` and ``test_32x32.mat`` in ``<data-dir>/svhn/``
or ``<data-dir>/syn/`` (MATLAB v5 files, as Stanford distributes SVHN), each holding
``X``, uint8 of shape ``[32, 32, 3, N]`` (the image index last, MATLAB's habit), and
``y``, ``[N, 1]`` labels where 10 stands for the digit 0 (MATLAB has no 0 index).
Images are already the model's 32x32 RGB, so the shared layout step passes them
through; they are transposed to ``[N, 32, 32, 3]`` and made contiguous once here, so
the pipeline gathers from one compact array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dann_client.preprocessing import layout_batch
from dann_serve.data.datadir import checked_labels, corrupt, dataset_dir, missing
from dann_serve.data.domain import Domain, Split

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
SIDE = 32


def _load_mat(name: str, path: Path) -> dict[str, np.ndarray]:
    import scipy.io

    try:
        contents = scipy.io.loadmat(path, variable_names=["X", "y"])
    except NotImplementedError:
        # scipy reads MATLAB v4-v7.2; v7.3 files are HDF5 underneath.
        raise corrupt(
            name,
            path,
            "a MATLAB v7.3 (HDF5) file; save it as v7 or earlier "
            "(-v7), the format SVHN is distributed in",
        ) from None
    except (ValueError, TypeError, OSError, EOFError, IndexError, KeyError) as error:
        raise corrupt(name, path, f"not a readable MATLAB .mat file ({error})") from None
    for key in ("X", "y"):
        if key not in contents:
            raise corrupt(
                name, path, f"has no variable {key!r} (expected X: 32x32x3xN images, y: N labels)"
            )
    return contents


def read_mat_split(name: str, path: Path) -> Split:
    """One ``.mat`` file as a Split: ``X`` transposed to ``[N, 32, 32, 3]``, 10 -> 0 in ``y``."""
    contents = _load_mat(name, path)
    images, labels = contents["X"], np.asarray(contents["y"])
    if images.ndim != 4 or images.shape[:3] != (SIDE, SIDE, 3):
        raise corrupt(
            name, path, f"X has shape {list(images.shape)}, expected [{SIDE}, {SIDE}, 3, N]"
        )
    if images.dtype != np.uint8:
        raise corrupt(name, path, f"X is {images.dtype}, expected uint8 pixels")
    images = np.ascontiguousarray(np.moveaxis(images, -1, 0))
    if labels.size and np.issubdtype(labels.dtype, np.number):
        labels = np.where(labels == 10, 0, labels)
    return Split(layout_batch(images), checked_labels(name, path, labels, len(images)))


def load_matlab_domain(name: str, data_dir: Path | None) -> Domain:
    """``name``'s two ``.mat`` files from ``<data-dir>/<name>/``."""
    folder = dataset_dir(name, data_dir)
    paths = {split: folder / file for split, file in FILES.items()}
    if not all(path.is_file() for path in paths.values()):
        raise missing(name, folder, [" and ".join(FILES.values())])
    return Domain(
        name, train=read_mat_split(name, paths["train"]), test=read_mat_split(name, paths["test"])
    )


def load_svhn(data_dir: Path | None) -> Domain:
    """SVHN cropped digits (73,257 train / 26,032 test in the official files)."""
    return load_matlab_domain("svhn", data_dir)


def load_syn(data_dir: Path | None) -> Domain:
    """SynNumbers of Ganin and Lempitsky, in the same layout as SVHN."""
    return load_matlab_domain("syn", data_dir)

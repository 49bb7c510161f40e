"""``usps``: the US Postal Service handwritten digits, from ``usps.h5``.

Read from ``<data-dir>/usps/usps.h5``, the HDF5 layout common on data-science sites:
``train/data`` and ``test/data`` hold one flattened 16x16 float image in ``[0, 1]``
per row (light digit on a dark background, the digit filling the frame),
``train/target`` and ``test/target`` the labels 0-9; 7,291 train and 2,007 test.

Each image is rounded to uint8, as an image file would store it, and framed like
MNIST (:mod:`dann_serve.data.framing`: a 20x20 box centred in 28x28) before the
shared 28x28 layout step, so that ``usps`` and ``mnist`` differ in handwriting, not
in how much of the frame a digit fills.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dann_client.preprocessing import layout_batch
from dann_serve.data.datadir import checked_labels, corrupt, dataset_dir, missing
from dann_serve.data.domain import DatasetError, Domain, Split
from dann_serve.data.framing import frame_like_mnist

NAME = "usps"
FILE = "usps.h5"
SIDE = 16


def to_model_layout(rows: np.ndarray) -> np.ndarray:
    """Float rows ``[N, 256]`` in [0, 1] -> uint8 ``[N, 32, 32, 3]``, framed like MNIST."""
    pixels = np.rint(np.clip(rows, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(-1, SIDE, SIDE)
    return layout_batch(np.stack([frame_like_mnist(image) for image in pixels]))


def _read_split(file, path: Path, part: str) -> Split:
    arrays = {}
    for key in ("data", "target"):
        name = f"{part}/{key}"
        if name not in file:
            raise corrupt(
                NAME,
                path,
                f"has no dataset {name!r} (expected train/data, "
                "train/target, test/data, test/target)",
            )
        arrays[key] = np.asarray(file[name])
    data, target = arrays["data"], arrays["target"]
    if data.ndim == 3:
        data = data.reshape(len(data), -1)
    if data.ndim != 2 or data.shape[1] != SIDE * SIDE:
        raise corrupt(
            NAME,
            path,
            f"{part}/data has shape {list(data.shape)}, expected "
            f"[N, {SIDE * SIDE}] (flattened {SIDE}x{SIDE})",
        )
    if not np.issubdtype(data.dtype, np.floating):
        raise corrupt(NAME, path, f"{part}/data is {data.dtype}, expected floats in [0, 1]")
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if low < -1e-3 or high > 1 + 1e-3 or not np.isfinite(data).all():
        raise corrupt(NAME, path, f"{part}/data has values in [{low:g}, {high:g}], expected [0, 1]")
    labels = checked_labels(NAME, path, target, len(data))
    return Split(to_model_layout(data), labels)


def load_usps(data_dir: Path | None) -> Domain:
    """USPS from ``<data-dir>/usps/usps.h5``."""
    import h5py

    path = dataset_dir(NAME, data_dir) / FILE
    if not path.is_file():
        raise missing(NAME, path.parent, [FILE])
    try:
        with h5py.File(path, "r") as file:
            return Domain(
                NAME, train=_read_split(file, path, "train"), test=_read_split(file, path, "test")
            )
    except DatasetError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise corrupt(NAME, path, f"not a readable HDF5 file ({error})") from None

"""Where file-based data sets live on disk, and the checks every loader shares.

One rule for every data set: the files of data set ``<name>`` are read from
``<data-dir>/<name>/`` (``mnist/``, ``svhn/``, ``syn/``, ``mnistm/``, ``usps/``), so
one ``--data-dir`` serves every pair and SVHN and SynNumbers, whose files have the
same names, cannot be mistaken for each other. Without ``--data-dir`` the folder is
``$DANN_DATA_DIR``, else ``$XDG_CACHE_HOME/dann-serve/data``, else
``~/.cache/dann-serve/data``: the same place ``--download`` writes to, so a download
is found by the next command without repeating the option.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dann_serve.data.domain import DatasetError

DATA_DIR_VARIABLE = "DANN_DATA_DIR"
DOWNLOADABLE = frozenset({"mnist", "svhn"})


def user_cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/dann-serve``, else ``~/.cache/dann-serve``: where downloads and
    caches go unless a variable of ours names another folder; None when there is no
    home directory (no ``$HOME``, and no passwd entry to read it from, as for a
    container's user)."""
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "dann-serve"
    try:
        return Path.home() / ".cache" / "dann-serve"
    except RuntimeError:
        return None


def default_data_dir() -> Path:
    """The data folder used when ``--data-dir`` is not given."""
    if os.environ.get(DATA_DIR_VARIABLE):
        return Path(os.environ[DATA_DIR_VARIABLE]).expanduser()
    cache = user_cache_dir()
    if cache is None:
        raise DatasetError(
            f"no home directory to keep data sets under: pass --data-dir or set"
            f" ${DATA_DIR_VARIABLE}"
        )
    return cache / "data"


def dataset_dir(name: str, data_dir: Path | None) -> Path:
    """``<data-dir>/<name>``, the one folder a loader reads."""
    return (Path(data_dir) if data_dir is not None else default_data_dir()) / name


def missing(name: str, folder: Path, expected: Sequence[str]) -> DatasetError:
    """The error for absent files: the exact names expected and the folder searched."""
    where = f"{folder}" + ("" if folder.is_dir() else " (no such directory)")
    hint = " or pass --download" if name in DOWNLOADABLE else ""
    return DatasetError(
        f"{name}: expected {'; or '.join(expected)} in {where}; put the files there"
        f"{hint} (--data-dir or ${DATA_DIR_VARIABLE} sets the parent folder)"
    )


def corrupt(name: str, path: Path, problem: str) -> DatasetError:
    """The error for a file that exists but cannot be used."""
    return DatasetError(f"{name}: {path}: {problem}")


def checked_labels(name: str, path: Path, labels: np.ndarray, count: int) -> np.ndarray:
    """Labels as int64 ``[count]`` with every value a digit 0-9, else a clear error."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise corrupt(name, path, f"labels have shape {list(labels.shape)}, expected [N]")
    if len(labels) != count:
        raise corrupt(name, path, f"{len(labels)} labels for {count} images")
    integral = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels))
    )
    if not integral:
        raise corrupt(name, path, f"labels are {labels.dtype}, expected integers")
    out = labels.astype(np.int64)
    bad = (out < 0) | (out > 9)
    if bad.any():
        index = int(np.argmax(bad))
        raise corrupt(name, path, f"label {out[index]} at index {index} is out of range 0-9")
    return out

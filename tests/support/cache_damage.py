"""Damage done to a file of ``dann_serve.data.cache_files`` (the decode cache, the
rendered fonts), for the tests of the caches built on it: each must lead the reader to
make the file again, never to trust it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dann_serve.data.cache_files import checksum

Arrays = dict[str, np.ndarray]


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def emptied(path: Path) -> None:
    path.write_bytes(b"")


def rewritten(path: Path, change: Callable[[Arrays], Arrays], checksum_kept: bool) -> None:
    """The file's arrays passed through ``change``, under the checksum it had
    (``checksum_kept``: a damaged file) or a new one that matches (a forged file, which
    only the reader's own checks can refuse)."""
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    mark = arrays.pop("checksum")
    arrays = change(arrays)
    if not checksum_kept:
        mark = np.frombuffer(checksum(arrays).encode(), np.uint8)
    with path.open("wb") as handle:
        np.savez(handle, **arrays, checksum=mark)


def _inverted_images(arrays: Arrays) -> Arrays:
    return {**arrays, "images": 255 - arrays["images"]}


DAMAGE: dict[str, Callable[[Path], None]] = {
    "random bytes": random_bytes,
    "truncated": truncated,
    "empty": emptied,
    "pixels changed": lambda path: rewritten(path, _inverted_images, checksum_kept=True),
}

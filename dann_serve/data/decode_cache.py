"""Decoded images of a folder, kept between runs so that a second run starts at once.

Decoding ten thousand PNGs through the client's preprocessing takes seconds; reading
their uint8 arrays back takes milliseconds. One cache file per folder holds the
arrays of every readable image with the size and modification time each was decoded
from, so a changed, added or removed file costs only itself. The file is keyed by
the folder's absolute path and by the version of the preprocessing (the source of
:mod:`dann_client.preprocessing`, of the transparency rule in
:mod:`dann_client.background` and the framing rule in :mod:`dann_client.framing`, of
the contract's constants, and Pillow's version): a
change to any of them decodes everything again. A cache that cannot be read or whose
checksum does not match its contents is decoded again and rewritten, never trusted
(:mod:`cache_files`, which also says where the cache lives: outside run directories).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

import numpy as np

from dann_client import background, contract, framing, preprocessing
from dann_client.contract import INPUT_SHAPE
from dann_client.errors import ImageError
from dann_serve.data.cache_files import default_cache_dir, read_arrays, write_arrays
from dann_serve.progress import progress_bar

_FORMAT = 2  # the layout of the cache file itself (2: CRC-32 checksum)
_WHAT, _INSTEAD = "decode cache", "decoding again"


@cache
def preprocessing_version() -> str:
    """Changes whenever the image-to-array step could give other pixels."""
    import PIL

    digest = hashlib.sha256()
    # The step's source: preprocessing itself, the transparency and framing rules it
    # applies and the constants (luminance weights, thresholds, sizes) they read from
    # the contract.
    for module in (preprocessing, background, framing, contract):
        digest.update(Path(cast(str, module.__file__)).read_bytes())
    digest.update(f"\0pillow {PIL.__version__}\0format {_FORMAT}".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Decoded:
    """The images of ``files`` in order, ``None`` rows left out: ``images[i]`` is the
    i-th readable file; ``failures`` holds ``(file, reason)`` for the others."""

    images: np.ndarray
    readable: list[str]
    failures: list[tuple[str, str]]


Stamp = tuple[int, int]  # (size in bytes, modification time in ns)


@dataclass(frozen=True)
class _Cached:
    """A cache file's contents: each file's row, the stamps by row, the arrays."""

    rows: dict[str, int]
    stamps: list[Stamp]
    images: np.ndarray

    @classmethod
    def empty(cls) -> _Cached:
        return cls({}, [], _empty())


class DecodeCache:
    """Decodes the image files of one folder, reusing what an earlier run decoded."""

    def __init__(self, folder: Path, root: Path | None = None) -> None:
        self.folder = Path(folder).resolve()
        root = default_cache_dir() if root is None else Path(root)
        key = hashlib.sha256(f"{self.folder}\0{preprocessing_version()}".encode()).hexdigest()
        self.path = None if root is None else root / f"{key[:32]}.npz"  # None: not kept

    def decode(self, files: Sequence[str], progress: bool = False, subset: bool = False) -> Decoded:
        """Decode ``files`` (paths relative to the folder), from the cache where the file
        has not changed since; the cache is rewritten when anything was decoded, unless
        ``files`` are a ``subset`` of the folder (a rewrite keeps only the files asked
        for, so reading a few would make the next run decode the rest again)."""
        stamps = self._stamps(files)
        cached = self._read()
        hits, todo = [], []  # (position in files, row in the cache) and files to decode
        for position, (name, stamp) in enumerate(zip(files, stamps, strict=True)):
            row = cached.rows.get(name)
            if row is not None and stamp is not None and cached.stamps[row] == stamp:
                hits.append((position, row))
            else:
                todo.append(position)
        if not todo and [row for _, row in hits] == list(range(len(cached.rows))):
            return Decoded(cached.images, list(files), [])  # the cache as it is: no copy
        decoded, failures = self._decode_each([files[i] for i in todo], progress)
        keep = sorted([position for position, _ in hits] + [todo[i] for i in decoded])
        images = np.empty((len(keep), *INPUT_SHAPE), np.uint8)
        slot = {position: index for index, position in enumerate(keep)}
        if hits:
            images[[slot[p] for p, _ in hits]] = cached.images[[row for _, row in hits]]
        for i, array in decoded.items():
            images[slot[todo[i]]] = array
        readable = [files[position] for position in keep]
        # Rewritten when an image was decoded or one of the cached is gone, not for a
        # file that stays unreadable (decoded again, and refused again, every run).
        if not subset and (decoded or len(cached.rows) != len(keep)):
            self._write(readable, [stamps[position] for position in keep], images)
        return Decoded(images, readable, failures)

    def _decode_each(
        self, names: list[str], progress: bool
    ) -> tuple[dict[int, np.ndarray], list[tuple[str, str]]]:
        """The arrays of the readable ``names`` by their index, and ``(name, reason)``
        for the others."""
        arrays, failures = {}, []
        shown = progress and bool(names)
        bar = progress_bar(names, show=shown, desc=f"decoding {self.folder.name}", unit="image")
        for index, name in enumerate(bar):
            try:
                arrays[index] = preprocessing.load_image(self.folder / name)
            except ImageError as error:
                failures.append((name, str(error)))
        return arrays, failures

    def _stamps(self, files: Sequence[str]) -> list[Stamp | None]:
        """Size and modification time of each file (None: cannot be stat-ed; decoding
        it will say why), read relative to the open folder to spare path joins."""
        descriptor = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            stamps: list[Stamp | None] = []
            for name in files:
                try:
                    info = os.stat(name, dir_fd=descriptor)
                except OSError:
                    stamps.append(None)
                    continue
                stamps.append((info.st_size, info.st_mtime_ns))
            return stamps
        finally:
            os.close(descriptor)

    def _read(self) -> _Cached:
        """What the cache file holds; empty when absent or broken."""
        if self.path is None:
            return _Cached.empty()
        return read_arrays(self.path, _WHAT, _INSTEAD, _parse) or _Cached.empty()

    def _write(self, names: list[str], stamps: list[Stamp | None], images: np.ndarray) -> None:
        index = [[name, *stamp] for name, stamp in zip(names, stamps, strict=True) if stamp]
        if self.path is None or len(index) != len(names):  # a file vanished: keep none
            return
        index_bytes = np.frombuffer(json.dumps(index).encode(), np.uint8)
        write_arrays(self.path, {"images": images, "index": index_bytes}, _WHAT)


def _parse(stored: dict[str, np.ndarray]) -> _Cached:
    """A cache file's arrays as rows: one model input per index entry, or ValueError."""
    images, index = stored["images"], json.loads(stored["index"].tobytes())
    if images.dtype != np.uint8 or images.shape != (len(index), *INPUT_SHAPE):
        raise ValueError(f"arrays of shape {images.shape}, {len(index)} entries")
    rows = {name: row for row, (name, _, _) in enumerate(index)}
    return _Cached(rows, [(size, mtime) for _, size, mtime in index], images)


def _empty() -> np.ndarray:
    return np.zeros((0, *INPUT_SHAPE), np.uint8)

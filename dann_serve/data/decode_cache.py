"""Decoded images of a folder, kept between runs so that a second run starts at once.

Decoding ten thousand PNGs through the client's preprocessing takes seconds; reading
their uint8 arrays back takes milliseconds. One cache file per folder holds the
arrays of every readable image with the size and modification time each was decoded
from, so a changed, added or removed file costs only itself. The file is keyed by
the folder's absolute path and by the version of the preprocessing (the source of
:mod:`dann_client.preprocessing` and Pillow's version): a change to either decodes
everything again. A cache that cannot be read or whose checksum does not match its
contents is decoded again and rewritten, never trusted.

The cache lives outside run directories, under ``$DANN_CACHE_DIR``, else
``$XDG_CACHE_HOME/dann-serve/decoded``, else ``~/.cache/dann-serve/decoded``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dann_client import preprocessing
from dann_client.contract import INPUT_SHAPE
from dann_client.errors import ImageError
from dann_serve.files import write_atomically

CACHE_DIR_VARIABLE = "DANN_CACHE_DIR"
_FORMAT = 1  # the layout of the cache file itself


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE]).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "dann-serve" / "decoded"


@cache
def preprocessing_version() -> str:
    """Changes whenever the image-to-array step could give other pixels."""
    import PIL

    digest = hashlib.sha256(Path(preprocessing.__file__).read_bytes())
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


class DecodeCache:
    """Decodes the image files of one folder, reusing what an earlier run decoded."""

    def __init__(self, folder: Path, root: Path | None = None) -> None:
        self.folder = Path(folder).resolve()
        root = default_cache_dir() if root is None else Path(root)
        key = hashlib.sha256(f"{self.folder}\0{preprocessing_version()}".encode()).hexdigest()
        self.path = root / f"{key[:32]}.npz"

    def decode(self, files: Sequence[str], progress: bool = False) -> Decoded:
        """Decode ``files`` (paths relative to the folder), from the cache where the file
        has not changed since; the cache is rewritten when anything was decoded."""
        stamps = {name: self._stamp(name) for name in files}
        known = self._read()
        rows: dict[str, np.ndarray] = {}
        failures: list[tuple[str, str]] = []
        todo = [name for name in files if known.get(name, (None,))[0] != stamps[name]]
        for name in files:
            if name not in todo:
                rows[name] = known[name][1]
        for name in tqdm(
            todo, desc=f"decoding {self.folder.name}", unit="image", disable=not progress
        ):
            try:
                rows[name] = preprocessing.load_image(self.folder / name)
            except ImageError as error:
                failures.append((name, str(error)))
        readable = [name for name in files if name in rows]
        images = np.stack([rows[name] for name in readable]) if readable else _empty()
        if todo or len(known) != len(readable):
            self._write(readable, [stamps[name] for name in readable], images)
        return Decoded(images, readable, failures)

    def _stamp(self, name: str) -> Stamp | None:
        try:
            info = os.stat(self.folder / name)
        except OSError:
            return None  # decoded below, which reports why it cannot be read
        return info.st_size, info.st_mtime_ns

    def _read(self) -> dict[str, tuple[Stamp, np.ndarray]]:
        """What the cache file holds, by file name; empty when absent or broken."""
        if not self.path.exists():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as stored:
                images, index_bytes = stored["images"], stored["index"].tobytes()
                checksum = stored["checksum"].tobytes().decode()
            if checksum != _checksum(images, index_bytes):
                raise ValueError("checksum does not match the contents")
            index = json.loads(index_bytes)
            if images.dtype != np.uint8 or images.shape != (len(index), *INPUT_SHAPE):
                raise ValueError(f"arrays of shape {images.shape}, {len(index)} entries")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
            print(f"{self.path}: broken decode cache, decoding again ({error})", file=sys.stderr)
            return {}
        return {name: ((size, mtime), images[i]) for i, (name, size, mtime) in enumerate(index)}

    def _write(self, names: list[str], stamps: list[Stamp | None], images: np.ndarray) -> None:
        index = [[name, *stamp] for name, stamp in zip(names, stamps, strict=True) if stamp]
        if len(index) != len(names):  # a file vanished between stat and decode: keep none
            return
        index_bytes = json.dumps(index).encode()
        buffer = io.BytesIO()
        np.savez(
            buffer,
            images=images,
            index=np.frombuffer(index_bytes, np.uint8),
            checksum=np.frombuffer(_checksum(images, index_bytes).encode(), np.uint8),
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, buffer.getvalue())
        except OSError as error:  # a read-only cache slows the next run, nothing more
            print(f"{self.path}: cannot write the decode cache ({error})", file=sys.stderr)


def _checksum(images: np.ndarray, index_bytes: bytes) -> str:
    digest = hashlib.blake2b(np.ascontiguousarray(images).data, digest_size=16)
    digest.update(index_bytes)
    return digest.hexdigest()


def _empty() -> np.ndarray:
    return np.zeros((0, *INPUT_SHAPE), np.uint8)

"""Arrays kept between runs in one ``.npz`` file: replaced whole, checked when read back.

Shared by the decode cache (a folder's decoded images, :mod:`decode_cache`) and the
rendered ``fonts`` splits (:mod:`fonts`). What either holds can be made again, so a
file that is missing, damaged or cannot be written costs time and one line on stderr,
never the run. The check is a CRC-32 of the arrays: it catches a damaged or
mismatched file (not tampering) at a fifth of a cryptographic hash's cost, which a
warm start feels.

Both live under ``$DANN_CACHE_DIR``, else ``$XDG_CACHE_HOME/dann-serve/decoded``, else
``~/.cache/dann-serve/decoded``; with none of these (no home directory, as for a
container's user without a passwd entry) nothing is kept.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dann_serve.data.datadir import user_cache_dir
from dann_serve.data.domain import DatasetError
from dann_serve.files import write_atomically

CACHE_DIR_VARIABLE = "DANN_CACHE_DIR"
_CHECKSUM = "checksum"
T = TypeVar("T")


class Stale(ValueError):
    """A whole cache file made by another version of what fills it: made again."""


def default_cache_dir() -> Path | None:
    """The cache folder; None when there is no home directory to put it in."""
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE]).expanduser()
    cache = user_cache_dir()
    return None if cache is None else cache / "decoded"


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """CRC-32 of the arrays' bytes, in the order of their names."""
    crc = 0
    for name in sorted(arrays):
        crc = zlib.crc32(np.ascontiguousarray(arrays[name]).data, crc)
    return f"{crc:08x}"


def write_arrays(path: Path, arrays: dict[str, np.ndarray], what: str) -> None:
    """Replace ``path`` with ``arrays`` and their checksum; a cache that cannot be
    written slows the next run, nothing more, so the failure is a line on stderr."""
    buffer = io.BytesIO()
    mark = np.frombuffer(checksum(arrays).encode(), np.uint8)
    contents: dict[str, Any] = {**arrays, _CHECKSUM: mark}  # Any: savez also takes a bool
    np.savez(buffer, **contents)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, buffer.getvalue(), shared=True)  # workers fill it at once
    except OSError as error:
        print(f"{path}: cannot write the {what} ({error})", file=sys.stderr)


def read_arrays(
    path: Path, what: str, instead: str, parse: Callable[[dict[str, np.ndarray]], T]
) -> T | None:
    """``parse`` of the arrays ``path`` holds, or None when it is absent, out of date
    (``parse`` raised :class:`Stale`) or broken (its checksum fails, or ``parse`` raised
    ``ValueError`` or ``DatasetError`` for arrays that are not what the reader expects);
    either of the last two is said on stderr: ``"<path>: broken <what>, <instead> (why)"``."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        mark = arrays.pop(_CHECKSUM).tobytes().decode()
        if mark != checksum(arrays):
            raise ValueError("checksum does not match the contents")
        return parse(arrays)
    except Stale as error:
        print(f"{path}: {what} out of date, {instead} ({error})", file=sys.stderr)
    except (OSError, ValueError, KeyError, DatasetError, zipfile.BadZipFile, EOFError) as error:
        print(f"{path}: broken {what}, {instead} ({error})", file=sys.stderr)
    return None

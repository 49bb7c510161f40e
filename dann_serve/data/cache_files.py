"""Arrays kept between runs in one ``.npz`` file: replaced whole, checked when read back.

Shared by the decode cache (a folder's decoded images, :mod:`decode_cache`) and the
rendered ``fonts`` splits (:mod:`fonts`). What either holds can be made again, so a
file that is missing, damaged or cannot be written costs time and one line on stderr,
never the run. The check is a CRC-32 of the arrays: it catches a damaged or
mismatched file (not tampering) at a fifth of a cryptographic hash's cost, which a
warm start feels.

Both live under ``$DANN_CACHE_DIR``, else ``$XDG_CACHE_HOME/dann-serve/decoded``, else
``~/.cache/dann-serve/decoded``.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dann_serve.files import write_atomically

CACHE_DIR_VARIABLE = "DANN_CACHE_DIR"
_CHECKSUM = "checksum"


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE]).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "dann-serve" / "decoded"


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
    np.savez(buffer, **arrays, **{_CHECKSUM: mark})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, buffer.getvalue(), shared=True)  # workers fill it at once
    except OSError as error:
        print(f"{path}: cannot write the {what} ({error})", file=sys.stderr)


def read_arrays(
    path: Path, what: str, instead: str, check: Callable[[dict[str, np.ndarray]], None]
) -> dict[str, np.ndarray] | None:
    """The arrays ``path`` holds, or None when it is absent or broken (said on stderr:
    ``"<path>: broken <what>, <instead> (<why>)"``). ``check`` raises ``ValueError``
    for arrays that pass the checksum but are not what the reader expects."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        mark = arrays.pop(_CHECKSUM).tobytes().decode()
        if mark != checksum(arrays):
            raise ValueError("checksum does not match the contents")
        check(arrays)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        print(f"{path}: broken {what}, {instead} ({error})", file=sys.stderr)
        return None
    return arrays

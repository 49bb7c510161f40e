"""``--download``: fetch the official files of ``mnist`` and ``svhn`` into the data folder.

Files land where the loaders read them (``<data-dir>/<name>/``, see
:mod:`dann_serve.data.datadir`). Each is streamed into ``<file>.part`` and renamed
only once its md5 matches the published one, so a loader never sees half a file; an
interrupted download resumes from the ``.part`` with an HTTP Range request, and one
that fails its checksum is deleted so the next attempt starts clean. A file already
in place is checked, never re-fetched. Without a network the first connection fails
within ``timeout`` seconds with one line naming the URL and where to put the files by
hand. Only the standard library speaks HTTP, so no extra dependency is needed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dann_serve.data.catalog import stored_as
from dann_serve.data.datadir import dataset_dir
from dann_serve.data.domain import DatasetError
from dann_serve.progress import progress_bar

TIMEOUT = 10.0
"""Seconds to wait for a connection (and for each read), so offline fails at once."""
CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    """One official file: where it is published and its md5."""

    url: str
    md5: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"
# The md5s are those torchvision publishes for the same files.
REMOTES: dict[str, tuple[Remote, ...]] = {
    "mnist": (
        Remote(_MNIST + "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        Remote(_MNIST + "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        Remote(_MNIST + "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        Remote(_MNIST + "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    "svhn": (
        Remote(_SVHN + "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
        Remote(_SVHN + "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
    ),
}


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while block := stream.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _already_there(name: str, folder: Path, remote: Remote) -> bool:
    """True when the loader can already read this file (checked if it is ours)."""
    path = folder / remote.filename
    if path.is_file():
        found = md5_of(path)
        if found != remote.md5:
            raise DatasetError(
                f"{name}: {path} is already there but its md5 is {found}, not the official "
                f"{remote.md5}; move it away and run again to download it"
            )
        return True
    # MNIST users often keep the unpacked IDX files or Keras' archive instead.
    unpacked = path.with_suffix("") if path.suffix == ".gz" else None
    return bool(unpacked and unpacked.is_file()) or (
        name == "mnist" and (folder / "mnist.npz").is_file()
    )


def download_datasets(
    names: Iterable[str],
    data_dir: Path | None,
    *,
    progress: bool = True,
    timeout: float = TIMEOUT,
    remotes: dict[str, tuple[Remote, ...]] | None = None,
) -> list[Path]:
    """Fetch what is missing of each downloadable data set in ``names`` (a variant such
    as ``mnist-texture``: its base's files); others are skipped.

    Returns the files written. ``remotes`` replaces the official list (for tests).
    """
    remotes = REMOTES if remotes is None else remotes
    written = []
    for name in dict.fromkeys(stored_as(name) for name in names):
        folder = dataset_dir(name, data_dir)
        wanted = [r for r in remotes.get(name, ()) if not _already_there(name, folder, r)]
        if not wanted:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatasetError(f"{name}: cannot create {folder} ({error.strerror})") from None
        if not os.access(folder, os.W_OK):
            raise DatasetError(f"{name}: cannot write to {folder}; choose another --data-dir")
        files = ", ".join(remote.filename for remote in wanted)
        for remote in wanted:
            written.append(
                fetch(
                    remote,
                    folder / remote.filename,
                    name=name,
                    files=files,
                    progress=progress,
                    timeout=timeout,
                )
            )
    return written


def fetch(
    remote: Remote,
    destination: Path,
    *,
    name: str = "",
    files: str = "",
    progress: bool = True,
    timeout: float = TIMEOUT,
) -> Path:
    """Download ``remote`` to ``destination`` through ``<destination>.part``, resuming it."""
    part = destination.with_name(destination.name + ".part")
    label = f"{name}: " if name else ""
    for _ in range(2):  # a second pass only when the server refuses the resume range
        offset = part.stat().st_size if part.is_file() else 0
        try:
            _stream(remote.url, part, offset, progress, timeout)
        except _RangeRefused:
            if md5_of(part) == remote.md5:
                break  # the .part was already whole
            part.unlink()
            continue
        except urllib.error.HTTPError as error:
            raise DatasetError(
                f"{label}cannot download {remote.url}: HTTP {error.code} {error.reason}"
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            raise DatasetError(
                f"{label}cannot reach {remote.url} ({reason}); offline? put "
                f"{files or destination.name} in {destination.parent} by hand"
            ) from None
        except _BrokeOff as error:
            raise DatasetError(
                f"{label}download of {remote.url} broke off at "
                f"{part.stat().st_size:,} bytes ({error}); run again to "
                "resume it"
            ) from None
        break
    found = md5_of(part)
    if found != remote.md5:
        part.unlink()
        raise DatasetError(
            f"{label}{remote.url}: checksum mismatch (md5 {found}, expected {remote.md5}); "
            f"deleted the download, run again to fetch it afresh"
        )
    part.replace(destination)
    return destination


class _RangeRefused(Exception):
    """HTTP 416: the .part is not a prefix the server can continue."""


class _BrokeOff(Exception):
    """The connection was made but ended before the whole file came."""


def _stream(url: str, part: Path, offset: int, progress: bool, timeout: float) -> None:
    """Append the bytes from ``offset`` on to ``part``, with a progress bar."""
    headers = {"User-Agent": "dann-serve"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            raise _RangeRefused from None
        raise
    with response:
        resumed = offset and response.status == 206
        if offset and not resumed:
            offset = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        bar = progress_bar(
            show=progress,
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            leave=False,
        )
        with bar, part.open("ab" if resumed else "wb") as out:
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as error:
                raise _BrokeOff(str(error) or type(error).__name__) from None
    if total is not None and part.stat().st_size < total:
        raise _BrokeOff(f"expected {total:,} bytes")

"""Turn command-line inputs into image paths: files, directories, globs, ``-``.

Inputs that lead nowhere (a missing file, a glob matching nothing, a directory
without images, a directory that cannot be listed) become ``Unreadable`` items in the
same stream, in order, so that the caller reports them as one line each and goes on
with the rest.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from dann_client.preprocessing import IMAGE_EXTENSIONS

STDIN = "-"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Unreadable:
    """An input that produced no image, and why (shown as ``path: reason``)."""

    path: str
    reason: str


def expand_inputs(args: Iterable[str], stdin: TextIO | None = None) -> Iterator[str | Unreadable]:
    """Yield image paths (as given, or found under directories) and ``Unreadable``s.

    A directory is walked recursively in sorted order, keeping files with an
    image suffix; a file named explicitly is kept whatever its suffix. ``-``
    reads one input per line from ``stdin``, each treated like an argument.
    Lazy, so a long list on stdin starts flowing before it has been read.
    """
    for arg in args:
        if arg == STDIN:
            if stdin is None:
                yield Unreadable(STDIN, "no standard input to read paths from")
                continue
            for line in stdin:
                line = line.rstrip("\r\n")
                if line and line != STDIN:
                    yield from _expand_one(line)
        else:
            yield from _expand_one(arg)


def _expand_one(arg: str) -> Iterator[str | Unreadable]:
    path = Path(arg)
    if path.is_dir():
        yield from _walk(path)
    elif path.exists() or os.path.lexists(arg):
        yield arg
    elif _GLOB_CHARS.intersection(arg):
        matches = sorted(glob.glob(arg, recursive=True))
        if not matches:
            yield Unreadable(arg, "no files match this pattern")
        for match in matches:
            yield from _walk(Path(match)) if Path(match).is_dir() else iter([match])
    else:
        yield Unreadable(arg, "no such file or directory")


def _walk(directory: Path) -> Iterator[str | Unreadable]:
    """The images under ``directory``; a folder that cannot be listed is reported with
    its own error (os.walk would skip it silently, and an unreadable input directory
    would read as one without images)."""
    found = False
    failures: list[OSError] = []
    for root, dirs, files in os.walk(directory, onerror=failures.append):
        yield from _failed(failures)
        dirs.sort()
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found = True
                yield os.path.join(root, name)
    if failures:
        found = True
        yield from _failed(failures)
    if not found:
        yield Unreadable(str(directory), "no image files in this directory")


def _failed(failures: list[OSError]) -> Iterator[Unreadable]:
    for error in failures:
        yield Unreadable(str(error.filename), (error.strerror or str(error)).lower())
    failures.clear()

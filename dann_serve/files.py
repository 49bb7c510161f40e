"""Files written for other readers: replaced whole, and generated blocks spliced into
hand-written documents.

Every file the project writes for another reader is replaced in one step: a run's
``config.json``, ``summary.json`` and ``metrics.csv`` (read by ``--resume``,
``evaluate`` and ``report``, and left by a kill at any moment), ``models.config``
(polled by servers), ``docs/RESULTS.md`` and ``docs/PERFORMANCE.md``, and the
benchmarks' results, the images a server captures, the data caches. The new content
goes to ``<name>.tmp`` beside the file (``<name>.<uuid4>.tmp`` where several processes
write it at once; a suffix no reader of the folder takes for its files) and is renamed
over it; on POSIX the rename is atomic, so a reader finds the old file
or the new one, never half of either.

``docs/RESULTS.md`` (``dann-serve report``) and ``docs/PERFORMANCE.md``
(``bench/performance_page.py``) mix analysis written by hand with tables generated
from files. Each generated block sits between two HTML comments, invisible once
rendered: ``<!-- KIND:begin -->`` and ``<!-- KIND:end -->``, or with a ``NAME`` after
``begin``/``end`` where one document holds several blocks of one kind. :func:`splice`
replaces what lies between one pair and keeps every other byte as it was.

Imports nothing but the standard library: the benchmarks that must not load
TensorFlow use it too. (``dann_client`` writes no such files, so it needs no copy.)
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path


def write_atomically(
    path: Path,
    content: str | bytes,
    *,
    durable: bool = False,
    mode: int | None = None,
    shared: bool = False,
) -> None:
    """Replace ``path`` with ``content`` (text is written as UTF-8, line endings as given).

    ``durable``: the content reaches the disk before the rename and the rename before
    the return, so a crash just after (a power cut under a running server) leaves the
    old file or the new one, never an empty one; for files a person's command changes,
    not for those written at every step of a run. ``mode``: the file's permissions from
    its creation on, whatever the umask (0o600: no moment at which another user could
    open it); None: the umask's. ``shared``: other processes may write ``path`` at the
    same moment (a cache every worker of a run fills, from any host sharing the
    volume), so each writer's temporary file is its own (``<name>.<uuid4>.tmp``; one
    ``<name>.tmp`` would take two writers' bytes and could be renamed half-written)
    and the last rename wins; a writer killed mid-write leaves its file behind. A write
    that fails (a full disk) removes its temporary file, so nothing half-written is
    left behind.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    writer = f".{uuid.uuid4().hex}" if shared else ""
    temporary = path.with_name(f"{path.name}{writer}.tmp")
    try:
        _write_file(temporary, data, durable, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _write_file(path: Path, data: bytes, durable: bool, mode: int | None) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o666 if mode is None else mode)
    try:
        if mode is not None:  # the umask's bits, or a leftover file's, set aside
            os.fchmod(descriptor, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        if durable:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json(path: Path, payload: dict, *, sort_keys: bool = True) -> None:
    """``payload`` as indented JSON with a final newline, replacing ``path`` atomically."""
    write_atomically(path, json.dumps(payload, indent=2, sort_keys=sort_keys) + "\n")


# -- generated blocks in hand-written documents ---------------------------------------------


class MarkerError(ValueError):
    """A block's markers are repeated, missing one or out of order; nothing is guessed."""


def markers(kind: str, name: str = "") -> tuple[str, str]:
    """The begin and end markers of the block ``kind`` (and ``name``, if given)."""
    suffix = f" {name}" if name else ""
    return f"<!-- {kind}:begin{suffix} -->", f"<!-- {kind}:end{suffix} -->"


def block_names(document: str, kind: str) -> list[str]:
    """The names of the ``kind`` blocks ``document`` holds, in order: of the begin
    markers on lines of their own (not those quoted in its prose)."""
    pattern = rf"^<!-- {re.escape(kind)}:begin ([\w-]+) -->\r?$"
    return re.findall(pattern, document, flags=re.MULTILINE)


def splice(document: str, block: str, begin: str, end: str) -> str:
    """``document`` with the text between ``begin`` and ``end`` replaced by ``block``.

    The markers stay, ``begin`` on a line of its own above ``block`` (which should end
    in a newline). ``MarkerError`` unless each marker appears once, ``begin`` first.
    """
    begins, ends = document.count(begin), document.count(end)
    start, stop = document.find(begin), document.find(end)
    if begins != 1 or ends != 1 or stop < start:
        raise MarkerError(
            f"the markers {begin} and {end} must appear once each, in that "
            f"order (found {begins} and {ends})"
        )
    return document[:start] + f"{begin}\n{block}{end}" + document[stop + len(end) :]


def read_document(path: Path) -> str | None:
    """The text of ``path``, line endings as they are; None if there is no such file.

    ``UnicodeDecodeError`` if it is not UTF-8.
    """
    try:  # bytes, not text mode: line endings stay as they are
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None


def write_document(path: Path, text: str) -> None:
    """Replace ``path`` (its folder created if needed) with ``text``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)

"""Progress on stderr, drawn only where someone watches it.

A tqdm bar redraws itself with carriage returns several times a second. On a
terminal that stays one line; in a log file, a CI log or a Kubernetes pod's log
every redraw is kept. So each long step of the package (decoding a folder,
downloading, training, reverse validation) shows its bar through
:func:`progress_bar`, which draws it only on a terminal. Training also writes one
plain line per evaluation when it is not on one (``training.loop``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm


def on_terminal() -> bool:
    """Whether stderr, where progress goes, is a terminal."""
    return sys.stderr.isatty()


def progress_bar(iterable: Iterable | None = None, *, show: bool, **options) -> tqdm:
    """``tqdm(iterable, **options)`` on stderr, drawn when ``show`` and stderr is a
    terminal; otherwise a bar that counts without drawing, so callers update it alike."""
    return tqdm(iterable, file=sys.stderr, disable=not (show and on_terminal()), **options)

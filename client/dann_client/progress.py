"""A one-line progress bar on stderr, for runs long enough to wonder about.

Ten thousand images take seconds to minutes; without a sign of life a user cannot
tell a slow run from a stuck one. The bar appears only when stderr is a terminal
(never in a pipe, a log file or a test's captured output) and only once a run has
lasted ``delay`` seconds, so short runs print nothing extra. It is redrawn at most
``interval`` times a second, in place with a carriage return; a line printed while
it shows (an unreadable file's) clears it first, and it is drawn again below.
Written here rather than taken from tqdm to keep the client's dependencies at five.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_WIDTH = 24  # characters of the bar itself


class Progress:
    """Counts done items out of ``total`` (None when unknown) and shows the count."""

    def __init__(
        self,
        stream: TextIO,
        total: int | None,
        *,
        enabled: bool | None = None,
        delay: float = 1.0,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total = total
        self.enabled = _is_terminal(stream) if enabled is None else enabled
        self.delay = delay
        self.interval = interval
        self.clock = clock
        self.done = 0
        self.shown = False  # whether a bar is on the screen now
        self._start = clock()
        self._drawn_at: float | None = None

    @staticmethod
    def wanted(stderr: TextIO, stdout: TextIO) -> bool:
        """Whether a run should show a bar: when stderr is a terminal, unless stdout is
        one too, where the results scrolling by show the progress and a bar drawn
        between them would tear their lines."""
        return _is_terminal(stderr) and not _is_terminal(stdout)

    def advance(self, count: int = 1) -> None:
        """``count`` more items are done; redraw if it is time."""
        self.done += count
        if not self.enabled:
            return
        now = self.clock()
        if now - self._start < self.delay:
            return
        if self._drawn_at is None or now - self._drawn_at >= self.interval:
            self._draw(now)

    def message(self, line: str) -> None:
        """Print ``line`` on the stream without tearing the bar."""
        if self.shown:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n")
        if self.shown:
            self._draw(self.clock())
        else:
            self.stream.flush()

    def close(self) -> None:
        """Leave the final count on its own line, if a bar was ever shown."""
        if self._drawn_at is not None:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()
        self.shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def text(self, now: float) -> str:
        """The bar as shown: ``done/total [####----]  41%  3,510/s  ETA 2s``."""
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        if not self.total:
            return f"{self.done:,} images  {rate:,.0f}/s"
        share = min(self.done / self.total, 1.0)
        filled = round(share * _WIDTH)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self.done:,}/{self.total:,} [{bar}] {share:4.0%}  {rate:,.0f}/s"
            f"  ETA {_duration(left)}"
        )

    def _draw(self, now: float) -> None:
        self.stream.write("\r\x1b[K" + self.text(now))
        self.stream.flush()
        self.shown = True
        self._drawn_at = now


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"

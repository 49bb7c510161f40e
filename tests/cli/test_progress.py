"""Progress bars are drawn where someone watches them, not into logs."""

from __future__ import annotations

import io
import sys

import pytest

from dann_serve.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "show", "drawn"),
    [(Terminal, True, True), (io.StringIO, True, False), (Terminal, False, False)],
)
def test_a_bar_is_drawn_only_on_a_terminal_and_when_asked(monkeypatch, stream, show, drawn) -> None:
    stderr = stream()
    monkeypatch.setattr(sys, "stderr", stderr)
    counted = list(progress_bar(range(3), show=show, desc="decoding"))
    assert counted == [0, 1, 2]  # the work goes on either way
    assert ("decoding" in stderr.getvalue() and "3/3" in stderr.getvalue()) is drawn
    assert bool(stderr.getvalue()) is drawn

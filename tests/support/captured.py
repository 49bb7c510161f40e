"""What the capture tests share: the files a capture left, images to send, waiting."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def captured_files(folder: Path, suffix: str | None = None) -> list[Path]:
    """Every file under ``folder`` but the version folders' manifests: the images, and
    any temporary file left behind (``suffix``: only the files ending in it)."""
    from dann_serve.config import CAPTURE_MANIFEST

    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name != CAPTURE_MANIFEST and (suffix is None or p.suffix == suffix)
    )


def random_pixels(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def off_centre_digits(count: int) -> np.ndarray:
    """Bars of ink on black, off the framing rule's centre: a file read without the
    laid-out mark would be reframed, moving them."""
    pixels = np.zeros((count, 32, 32, 3), np.uint8)
    for index in range(count):
        pixels[index, 2 + index : 10 + index, 3:6] = 255
    return pixels


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)

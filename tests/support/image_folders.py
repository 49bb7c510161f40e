"""What the folder tests share: image folders written as a user keeps them, and the way
the tests run ``dann-serve`` and read what it wrote.

Every image is a real file: 28x28 grey PNGs of scikit-learn's handwritten digits (the
embedded ``digits`` data set, cut back to MNIST's 28x28; the ``digits`` fixture of
``conftest.py``), so no test skips for want of data. Runs are real ``dann-serve
train`` commands (in process, through click's runner) of a few steps on batches of 8.
``$DANN_CACHE_DIR`` points into each test's temporary folder (the ``cache_dir``
fixture), so nothing is written to ``~/.cache``.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from pathlib import Path

import numpy as np
from click.testing import CliRunner, Result
from PIL import Image

from dann_serve.cli import main
from dann_serve.data import folders
from dann_serve.training.rundir import read_metrics

TINY = ("--steps", "4", "--batch-size", "8", "--eval-every", "2", "--quiet")


class Killed(BaseException):
    """A SIGKILL, simulated in process: nothing in ``train_run`` handles it, so nothing
    is saved on the way out."""


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def labelled_folder(
    root: Path, digits: tuple[np.ndarray, np.ndarray], per_class: int, skip: int = 0
) -> Path:
    """``root/<digit>/<index>.png``: ``per_class`` images of every digit, the first
    ``skip`` of each left out (so that two folders can hold different images)."""
    images, labels = digits
    for digit in range(10):
        for index in np.flatnonzero(labels == digit)[skip : skip + per_class]:
            write_png(root / str(digit) / f"{index:04d}.png", images[index])
    return root


def unlabelled_folder(
    root: Path, digits: tuple[np.ndarray, np.ndarray], count: int, start: int = 600
) -> Path:
    """``count`` images spread over nested subfolders that are not named 0 to 9."""
    images = digits[0]
    for n, index in enumerate(range(start, start + count)):
        where = ("", "camera", "camera/2024")[n % 3]
        write_png(root / where / f"img{index:04d}.png", images[index])
    return root


def break_file(path: Path, how: str) -> Path:
    """Make ``path`` an image file nobody can decode: ``empty``, ``garbage``,
    ``truncated`` (the first half of a real PNG) or a ``dangling`` symbolic link."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"this is not a PNG at all" * 10)
    elif how == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)).save(buffer, "PNG")
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif how == "dangling":
        path.symlink_to(path.parent / "no-such-target.png")
    else:
        raise ValueError(how)
    return path


def dann_serve(*args: str | Path) -> Result:
    """``dann-serve *args`` in this process, as a user types it."""
    return CliRunner().invoke(main, [str(arg) for arg in args])


def error_line(result: Result, code: int = 1) -> str:
    """The one line of a refused command (no traceback, no crash)."""
    assert result.exit_code == code, f"{result.output}{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("dann-serve: error: "), lines[0]
    return lines[0]


def run_record(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def metric_steps(run: Path) -> list[int]:
    return [int(row["step"]) for row in read_metrics(run / "metrics.csv")]


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file below ``folder``: its content hash and modification time."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def held_out(names: list[str]) -> set[str]:
    return {name for name in names if zlib.crc32(name.encode()) % folders.HOLDOUT_EVERY == 0}

"""``dann-client predict`` against hostile files, all in one call with good files,
against a real ``dann-serve serve``.

Each bad file costs exactly one stderr line, ``<path>: <reason>``, in input order; the
good files and the odd-but-valid images the preprocessing accepts (1x1, an animated
GIF, whose first frame is read, 16-bit grey TIFF: docs/ARCHITECTURE.md, Preprocessing)
are answered; the exit status is 1; nothing prints a traceback; and the client's peak
memory stays small although one file would decode to 400 MB.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MAX_CLIENT_RSS_MB = 500
BOMB_SIDE = 20_000  # 400 megapixels: 400 MB as decoded 1-bit pixels, 1.2 GB as RGB


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb(side: int) -> bytes:
    """A real, decodable ``side`` x ``side`` 1-bit black PNG: ~50 KB on disk."""
    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then the packed pixels
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, grey
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def _encoded(array: np.ndarray, kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, kind)
    return buffer.getvalue()


def hostile_files(directory: Path) -> tuple[list[Path], dict[Path, str]]:
    """(files the client must answer, {file it must refuse: words its reason holds})."""
    directory.mkdir()
    photo = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    accepted, refused = [], {}

    def bad(name: str, reason: str) -> Path:
        refused[directory / name] = reason
        return directory / name

    bad("empty.png", "empty file").write_bytes(b"")
    png, jpeg = _encoded(photo, "PNG"), _encoded(photo, "JPEG")
    bad("truncated.png", "truncated").write_bytes(png[: len(png) // 2])
    bad("truncated.jpg", "truncated").write_bytes(jpeg[: len(jpeg) // 2])
    bad("text.png", "not an image").write_text("a shopping list, not a picture\n")
    bad("bomb.png", "decompression bomb").write_bytes(decompression_bomb(BOMB_SIDE))
    bad("digit.svg", "not an image").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32">'
        '<text x="8" y="26" font-size="28">7</text></svg>'
    )
    bad("x.png", "no image files in this directory").mkdir()
    os.mkfifo(bad("fifo.png", "not a regular file"))  # opening it would block forever
    bad("zeros.png", "not a regular file").symlink_to("/dev/zero")  # a read never ends
    locked = bad("locked.png", "permission denied")
    locked.write_bytes(png)
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: permissions are not enforced
        del refused[locked]
        locked.unlink()

    one = directory / "one-pixel.png"
    Image.new("RGB", (1, 1), (250, 250, 250)).save(one)
    animated = directory / "animated.gif"
    frames = [Image.new("P", (40, 30), index) for index in range(4)]
    frames[0].save(animated, save_all=True, append_images=frames[1:], duration=40, loop=0)
    deep = directory / "grey16.tif"
    ramp = (np.arange(48 * 40).reshape(48, 40) * 34).astype(np.uint16)
    Image.fromarray(ramp).save(deep)  # mode I;16
    with Image.open(deep) as check:
        assert check.mode == "I;16"
    accepted += [one, animated, deep]
    return accepted, refused


# Peak RSS survives fork and exec: a child of this process (TensorFlow loaded) starts
# with its RSS, so a small launcher runs the client and reads the client's own peak.
_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_measured(
    command: list[str], *args: str | Path, workdir: Path, timeout: float = 120
) -> tuple[int, str, str, float]:
    """Run ``command`` (``dann-client``); (exit code, stdout, stderr, its peak RSS in MB)."""
    peak = workdir / "peak-rss-kb"
    with subprocess.Popen(
        [sys.executable, "-S", "-c", _LAUNCHER, str(peak), *command, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"dann-client still running after {timeout} s (a file blocked it?)")
    return process.returncode, out, err, int(peak.read_text()) / 1024


def test_hostile_files_cost_one_line_each_and_the_rest_is_answered(
    dann_client, reliability_server, tiny_files, tmp_path
):
    good = tiny_files[:4]
    accepted, refused = hostile_files(tmp_path / "hostile")
    # Interleaved, so a bad file in the middle of a batch is seen to cost only itself.
    bad = list(refused)
    inputs = [good[0], *bad[:5], good[1], *accepted, *bad[5:], good[2], good[3]]

    code, out, err, peak_mb = run_measured(
        dann_client.command,
        "predict",
        *inputs,
        "--json",
        "--batch-size",
        "4",
        "--timeout",
        "60",
        "--server",
        reliability_server.grpc_address,
        workdir=tmp_path,
    )

    assert code == 1, err
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [str(path) for path in bad], err
    for line, (path, reason) in zip(lines, refused.items(), strict=True):
        assert reason in line, f"{path}: expected '{reason}' in {line!r}"
    answered = [json.loads(line) for line in out.splitlines()]
    want = [path for path in inputs if path not in refused]
    assert [record["path"] for record in answered] == [str(path) for path in want]
    for record in answered:
        assert len(record["probabilities"]) == 10
        assert sum(record["probabilities"]) == pytest.approx(1.0, abs=1e-4)
        assert 0 <= record["label"] <= 9
    assert peak_mb < MAX_CLIENT_RSS_MB, f"dann-client peaked at {peak_mb:.0f} MB"

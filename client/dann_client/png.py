"""The one PNG encoder: the client's files for ``predict_image``, the export's checks and
warm-up records, the images a server captures. numpy and the standard library only (no
Pillow), so that it is cheap to import and the server uses it as the client does."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from dann_client.contract import LAID_OUT_PNG_TEXT


def encode_png(pixels: np.ndarray) -> bytes:
    """One uint8 ``[H, W, 3]`` image as a lossless PNG, compressed fast: zlib's level 1
    takes a tenth of the default's time and leaves the bytes within a few percent. What
    ``predict_image`` is sent (by the client over REST, the export's checks and warm-up
    records) and what a server keeps of the pixels it serves, marked as laid out
    (``LAID_OUT_PNG_TEXT``, right after IHDR), so that it decodes back to exactly these
    pixels. Written chunk by chunk rather than through Pillow's PNG plugin: about twice
    as fast for a 32x32 image (60 against 110 microseconds for fonts' digits), which a
    server capturing what it serves spends once per image kept."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected RGB pixels [H, W, 3], got {list(pixels.shape)}")
    height, width, _ = pixels.shape
    rows = np.zeros((height, 1 + width * 3), np.uint8)  # each row: filter type 0, pixels
    rows[:, 1:] = pixels.reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    key, text = LAID_OUT_PNG_TEXT
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
            chunk(b"tEXt", f"{key}\0{text}".encode("latin-1")),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)),
            chunk(b"IEND", b""),
        )
    )

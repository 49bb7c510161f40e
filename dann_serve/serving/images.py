"""Encoded images sent to ``predict_image``: their size read from their headers, and the
request refused before the graph decodes a decompression bomb.

A PNG of a few kilobytes can claim 50,000 x 50,000 pixels, and TensorFlow's GIF
decoder decodes every frame of an animation even when only the first is kept: the
graph would allocate gigabytes before failing. So each image's header is read here
(PNG ``IHDR``, JPEG start-of-frame, GIF screen and frames, BMP info header), and the
pixels the batch would decode, at 4 bytes a pixel (RGBA), must fit in the bound on
any decoded tensor (``--max-tensor-mb``). What is not a PNG, JPEG, GIF or BMP, or is
cut short before its size, is refused naming its index in the batch; what is corrupt
past its header fails in the decoder, and :mod:`~dann_serve.serving.signature` then
finds its index.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from dann_serve.serving.limits import Limits
from dann_serve.serving.status import invalid

DECODED_PIXEL_BYTES = 4  # RGBA, the widest image the graph decodes
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn, not DHT/JPG/DAC
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length


class HeaderError(ValueError):
    """An image whose header gives no size: not one of the four formats, or cut short."""


@dataclass(frozen=True)
class ImageSize:
    """What a header says the decoder will produce."""

    kind: str
    width: int
    height: int
    frames: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames

    def __str__(self) -> str:
        frames = f" in {self.frames} frames" if self.frames > 1 else ""
        return f"a {self.width}x{self.height} {self.kind}{frames}"


def image_kind(data: bytes) -> str | None:
    """``"PNG"``, ``"JPEG"``, ``"GIF"`` or ``"BMP"`` by the file's first bytes (its magic
    number, as the graph's decoder tells them apart); None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def image_size(data: bytes) -> ImageSize:
    """The format and size an encoded image declares; ``HeaderError`` saying why not."""
    kind = image_kind(data)
    if kind == "PNG":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise HeaderError("a PNG cut short before its IHDR header")
        width, height = struct.unpack(">II", data[16:24])
        return ImageSize("PNG", width, height)
    if kind == "JPEG":
        return _jpeg_size(data)
    if kind == "GIF":
        return _gif_size(data)
    if kind == "BMP":
        return _bmp_size(data)
    start = data[:8]
    raise HeaderError(
        "empty" if not data else f"not a PNG, JPEG, GIF or BMP file (it starts {start!r})"
    )


def _jpeg_size(data: bytes) -> ImageSize:
    """Walk the JPEG's marker segments to its start-of-frame header."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise HeaderError(f"a corrupt JPEG (no marker at byte {at})")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker in _JPEG_STANDALONE:
            at += 2
        elif marker in _JPEG_FRAMES:
            if at + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return ImageSize("JPEG", width, height)
        elif marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame
            raise HeaderError("a JPEG without a frame header")
        else:
            at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    raise HeaderError("a JPEG cut short before its frame header")


def _gif_size(data: bytes) -> ImageSize:
    """The logical screen and the number of frames, which TensorFlow decodes all of, on
    a canvas as large as the screen and every frame."""
    try:
        width, height, flags = struct.unpack("<HHB", data[6:11])
        at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        frames = 0
        while data[at] != 0x3B:  # trailer
            if data[at] == 0x21:  # extension: label, then sub-blocks
                at = _skip_blocks(data, at + 2)
            elif data[at] == 0x2C:  # image descriptor
                left, top, w, h, local = struct.unpack("<HHHHB", data[at + 1 : at + 10])
                width, height = max(width, left + w), max(height, top + h)
                at += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
                at = _skip_blocks(data, at + 1)  # after the LZW code size
                frames += 1
            else:
                raise HeaderError(f"a corrupt GIF (block type {data[at]:#x} at byte {at})")
    except (IndexError, struct.error):
        raise HeaderError("a GIF cut short") from None
    if not frames:
        raise HeaderError("a GIF without frames")
    return ImageSize("GIF", width, height, frames)


def _skip_blocks(data: bytes, at: int) -> int:
    """The offset after a chain of GIF sub-blocks (each a length byte, then that many)."""
    while data[at]:
        at += data[at] + 1
    return at + 1


def _bmp_size(data: bytes) -> ImageSize:
    if len(data) < 26:
        raise HeaderError("a BMP cut short before its header")
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ImageSize("BMP", abs(width), abs(height))


def check_images(name: str, items: Iterable[bytes], limits: Limits) -> None:
    """INVALID_ARGUMENT, naming the item, for an image without a readable size, and for
    a batch whose decoded pixels would exceed ``limits.max_tensor_bytes``."""
    budget = limits.max_tensor_bytes // DECODED_PIXEL_BYTES
    total = 0
    for index, data in enumerate(items):
        try:
            size = image_size(data)
        except HeaderError as error:
            raise invalid(f"input {name}[{index}]: {error}") from None
        total += size.pixels
        if size.pixels > budget:
            raise invalid(
                f"input {name}[{index}]: {size} would decode to "
                f"{size.pixels * DECODED_PIXEL_BYTES:,} bytes, over the limit of "
                f"{limits.max_tensor_bytes:,} (--max-tensor-mb): refused as a possible "
                "decompression bomb"
            )
        if total > budget:
            raise invalid(
                f"input {name}: images 0-{index} would decode to "
                f"{total * DECODED_PIXEL_BYTES:,} bytes, over the limit of "
                f"{limits.max_tensor_bytes:,} (--max-tensor-mb): send fewer or smaller images"
            )

"""The one image-to-array step shared by training, export checks and the client.

The model always sees float32 ``[N, 32, 32, 3]`` RGB in ``[0, 1]``. Anything the
network wants beyond that lives inside the exported graph, so that this module is
the whole contract between a pixel on disk and the model's input.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import re
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dann_client.background import AUTO, Background, flatten
from dann_client.contract import IMAGE_SIZE, INPUT_SHAPE, LAID_OUT_PNG_TEXT, MNIST_FIRST, MNIST_SIZE
from dann_client.errors import ImageError
from dann_client.framing import border_colour, frame, reframe
from dann_client.png import encode_png as encode_png  # its public name, as before

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


def layout_batch(images: np.ndarray) -> np.ndarray:
    """Bring a uint8 batch into the model's ``[N, 32, 32, 3]`` layout: grey ``[N, 28, 28]``
    or ``[N, 28, 28, 1]`` padded by 2 pixels of each image's background (its border's
    most common level: black ink on white gains no black frame), grey 32x32 with the
    channel repeated, ``[N, 32, 32, 3]`` unchanged. uint8 keeps data sets four times
    smaller than floats. A layout step, never framing: its callers hand it arrays laid
    out already (MNIST's and SVHN's loaders, arrays given to the client as the model's
    input); a user's file is checked against the rule in :func:`image_to_array`.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {images.dtype}")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    # Padding and repeating the channel are broadcast writes into one batch: the
    # same array as np.pad then np.repeat, about five times faster, which counts
    # because the client calls this once per image file.
    if images.ndim == 3 and images.shape[1:] == (MNIST_SIZE, MNIST_SIZE):
        out = np.empty((len(images), *INPUT_SHAPE), np.uint8)
        out[...] = border_colour(images[..., None]).astype(np.uint8)[:, None, None]
        inside = slice(MNIST_FIRST, MNIST_FIRST + MNIST_SIZE)
        out[:, inside, inside] = images[..., None]
        return out
    if images.ndim == 3 and images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE):
        out = np.empty((len(images), *INPUT_SHAPE), np.uint8)
        out[...] = images[..., None]
        return out
    if images.ndim != 4 or images.shape[1:] != INPUT_SHAPE:
        raise ValueError(
            f"expected images of shape [N, 28, 28], [N, 32, 32] or [N, 32, 32, 3], "
            f"got {list(images.shape)}"
        )
    return images


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 images in any accepted layout -> float32 ``[N, 32, 32, 3]`` in ``[0, 1]``."""
    return layout_batch(images).astype(np.float32) / np.float32(255.0)


# --- image files ----------------------------------------------------------------
#
# Everything below turns one image file (or an opened PIL image) into the uint8
# ``[32, 32, 3]`` array that ``to_model_input`` accepts. PIL is imported inside the
# functions so that ``import dann_client.preprocessing`` stays cheap for the CLI.

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"}
)
"""Suffixes (lower case) the client treats as images when it walks a directory."""

MAX_PIXELS = 40_000_000
"""Images larger than this are refused before decoding (a 40 MP photo is ~120 MB of RGB)."""


def load_image(
    path: str | Path,
    *,
    background: Background = AUTO,
    max_pixels: int = MAX_PIXELS,
    keep_layout: bool = False,
) -> np.ndarray:
    """Read one image file into the model layout: uint8 ``[32, 32, 3]`` RGB.

    Transparency is flattened onto ``background`` (``dann_client.background``: by
    default black behind light ink, white behind dark ink); ``keep_layout`` as in
    :func:`image_to_array`. Raises ``ImageError`` with a short reason (no such file, not
    an image, truncated, too large) so that a caller can report the file and move on."""
    _check_regular_file(path)
    return _decode(path, background, max_pixels, keep_layout)


def image_from_bytes(
    data: bytes, *, background: Background = AUTO, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """An image file's bytes into the model layout as :func:`load_image` reads the file:
    an upload is decoded in memory, never written anywhere."""
    if not data:
        raise ImageError("empty file")
    return _decode(io.BytesIO(data), background, max_pixels, False)


def _decode(
    source: str | Path | io.BytesIO, background: Background, max_pixels: int, keep_layout: bool
) -> np.ndarray:
    """Open, bound and lay out one image; every failure an ``ImageError``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns between its two thresholds; refuse those as well.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                _check_size(image.size, max_pixels)
                image.load()
                return image_to_array(image, background=background, keep_layout=keep_layout)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image file Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Pillow refuses the largest images in Image.open, before the size is known
        # here; its message carries the pixel count.
        found = re.search(r"\((\d+) pixels\)", str(error))
        raise ImageError(_bomb_message(int(found[1]) if found else None, max_pixels)) from None
    except Exception as error:
        # Pillow reports truncated and corrupt data with many exception types
        # (OSError, SyntaxError, struct.error, ...); one bad file must not stop a run.
        raise ImageError(_failure(error)) from None


def image_to_array(
    image: PILImage, *, background: Background = AUTO, keep_layout: bool = False
) -> np.ndarray:
    """An opened PIL image -> uint8 ``[32, 32, 3]``, by the rules of DESIGN.md.

    EXIF orientation first, so that photos come out upright; then grey images of the
    MNIST (28x28) or model (32x32) size take the exact array path of ``layout_batch``
    (so training and serving agree bit for bit); everything else is flattened to RGB.
    Those and RGB 32x32 images pass through as laid out when they follow the framing
    rule already or are not plain, else are framed (``framing.reframe``); unchecked with
    ``keep_layout`` (a data set that keeps its own layout, MNIST-M) or when the file is
    marked as laid out (``LAID_OUT_PNG_TEXT``; RGB 32x32 only, as in the graph). Any
    other size is framed where its background is plain, else fitted (``_fit_square``).
    """
    from PIL import ImageOps

    key, text = LAID_OUT_PNG_TEXT
    marked = image.format == "PNG" and image.mode == "RGB" and image.info.get(key) == text
    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode == "1":
        image = image.convert("L")
    grey = _grey_array(image)
    if grey is not None and grey.shape in {(MNIST_SIZE, MNIST_SIZE), (IMAGE_SIZE, IMAGE_SIZE)}:
        laid_out, side = layout_batch(grey[None])[0], len(grey)
    else:
        rgb = _to_rgb(image, grey, background)
        laid_out, side = _pixels(rgb), IMAGE_SIZE
        if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
            fill = border_colour(laid_out)
            framed = frame(laid_out, fill)
            return framed if framed is not None else _fit_square(rgb, fill)
    framed = None if keep_layout or marked else reframe(laid_out, side)
    return laid_out if framed is None else framed


def lay_out_images(images: np.ndarray) -> np.ndarray:
    """Each uint8 image of ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` (RGB) as its file
    would be read: uint8 ``[N, 32, 32, 3]``. How data sets stored at other sizes (USPS's
    16x16, scikit-learn's 8x8, the tight-cropped variants) reach the model's layout by
    the same rule as a user's files, framing included."""
    from PIL import Image

    out = np.empty((len(images), *INPUT_SHAPE), np.uint8)
    for index, image in enumerate(images):
        out[index] = image_to_array(Image.fromarray(np.ascontiguousarray(image)))
    return out


def load_images(
    paths: Iterable[str | Path], *, background: Background = AUTO, keep_layout: bool = False
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Read many files: the stacked batch of the readable ones, and ``(path, reason)``
    for the others. Convenient for data sets of image files on the training side
    (``keep_layout`` as in :func:`image_to_array`)."""
    arrays, failures = [], []
    for path in paths:
        try:
            arrays.append(load_image(path, background=background, keep_layout=keep_layout))
        except ImageError as error:
            failures.append((str(path), str(error)))
    batch = np.stack(arrays) if arrays else np.zeros((0, *INPUT_SHAPE), np.uint8)
    return batch, failures


def save_image(array: np.ndarray, path: str | Path, *, scale: int = 1) -> None:
    """Write a uint8 ``[H, W, 3]`` array as an image, enlarged ``scale`` times (nearest
    neighbour) so that the 32x32 the model sees can be looked at. Unscaled PNG is the
    model's input itself, marked so (:func:`encode_png`): read back, it is not framed
    again (``dann-serve samples`` writes data sets' digits in their own layouts)."""
    from PIL import Image

    if scale == 1 and str(path).lower().endswith(".png") and array.shape == INPUT_SHAPE:
        Path(path).write_bytes(encode_png(array))
        return
    if scale > 1:
        array = np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="RGB").save(path)


_EXIF_ORIENTATION = 0x0112


def _check_regular_file(path: str | Path) -> None:
    """Refuse what is not a regular file before opening it: opening a FIFO blocks
    until someone writes to it, and a device such as /dev/zero never ends."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise ImageError(_failure(error)) from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError("is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError("not a regular file")
    if info.st_size == 0:
        raise ImageError("empty file")


_SYSTEM_REASONS = {
    errno.ENOENT: "no such file",
    errno.ENOTDIR: "no such file",  # a directory of the path is a file
    errno.EISDIR: "is a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "symbolic link loop",
    errno.ENAMETOOLONG: "file name too long",
}


def _failure(error: Exception) -> str:
    """The reason a file gave no image: the system's, by its error number, when
    opening or reading it failed; else the decoder's."""
    if isinstance(error, OSError) and error.errno is not None:
        return _SYSTEM_REASONS.get(error.errno) or f"cannot read file: {error.strerror}"
    if isinstance(error, MemoryError):
        return "not enough memory to decode it"
    return f"cannot decode image: {error}"


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise ImageError(_bomb_message(size, max_pixels))


def _bomb_message(size: tuple[int, int] | int | None, max_pixels: int) -> str:
    if isinstance(size, tuple):
        shown = f"is {size[0]}x{size[1]} pixels"
    else:
        shown = f"has {size:,} pixels" if size else "has too many pixels"
    return (
        f"image {shown}, over the limit of {max_pixels:,}: refused as a possible decompression bomb"
    )


def _pixels(image: PILImage) -> np.ndarray:
    """uint8 ``[H, W]`` (mode L) or ``[H, W, 3]`` (mode RGB) of a loaded image.

    The same values as ``np.asarray(image)``, built from ``tobytes`` directly: for
    images this small, asarray's array-interface round trip costs more than the
    pixels themselves (about 25 of 80 microseconds per MNIST-sized file).
    """
    width, height = image.size
    shape = (height, width) if image.mode == "L" else (height, width, 3)
    return np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(shape)


def _grey_array(image: PILImage) -> np.ndarray | None:
    """uint8 ``[H, W]`` for single-channel images without transparency, else None.

    16- and 32-bit integer grey (``I;16*``, ``I``) is scaled from 0..65535, and
    float grey (``F``) is read as 0..255; Pillow's own ``convert("L")`` would clip
    them instead of scaling.
    """
    if image.mode == "L" and "transparency" not in image.info:
        return _pixels(image)
    if image.mode.startswith("I"):
        values = np.asarray(image).astype(np.float64) / 257.0
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
    else:
        return None
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _to_rgb(image: PILImage, grey: np.ndarray | None, background: Background) -> PILImage:
    """Any mode -> RGB, with transparent pixels composited onto ``background``."""
    from PIL import Image

    if grey is not None:
        return Image.fromarray(grey, mode="L").convert("RGB")
    return flatten(image, background)


def _fit_square(image: PILImage, fill: np.ndarray) -> np.ndarray:
    """Resize an RGB image into the 32x32 square, keeping its aspect ratio: uint8
    ``[32, 32, 3]``. The short side is padded, centred, with ``fill``, the image's
    background colour (``framing.border_colour``), so that an image on any uniform
    background (white paper, black MNIST-like, a coloured sign) stays on that
    background instead of gaining bars of a foreign colour.

    The result is that of padding the image to a square and resizing the square
    (within one level, from rounding), without ever building the square: a
    1 x 100,000 image would make it 30 GB. The long side is resized to 32 first;
    the short side is then resized by the same filter laid over the padded square,
    where the weight it gives the padding falls on the fill colour. Memory and time
    follow the image and the output, whatever the aspect ratio.
    """
    from PIL import Image

    width, height = image.size
    # Bilinear in Pillow widens its kernel when shrinking, i.e. it antialiases like
    # tf.image.resize(..., antialias=True), and unlike Lanczos it does not ring.
    if width == height:
        return _pixels(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
    if width > height:  # resize the rows to 32 wide; the short side is the columns
        rows = _pixels(image.resize((IMAGE_SIZE, height), Image.Resampling.BILINEAR))
        return _resize_padded(rows, width, fill)
    columns = _pixels(image.resize((width, IMAGE_SIZE), Image.Resampling.BILINEAR))
    padded = _resize_padded(columns.transpose(1, 0, 2), height, fill)
    return np.ascontiguousarray(padded.transpose(1, 0, 2))


def _resize_padded(pixels: np.ndarray, side: int, fill: np.ndarray) -> np.ndarray:
    """Resize axis 0 of uint8 ``[n, 32, 3]`` to 32 as if it were centred in ``side``
    pixels of ``fill``: the output rows of that padded axis, uint8 ``[32, 32, 3]``.

    Pillow's 22-bit fixed-point weights, rounded as Pillow rounds, so that the result
    is the padded square's to the level. The sums are whole numbers far below 2**53,
    which float64 holds exactly, so a float matrix product is exact integer arithmetic.
    """
    n = len(pixels)
    weights, padding = _padded_weights(n, side)
    total = (weights @ pixels.reshape(n, -1).astype(np.float64)).reshape(IMAGE_SIZE, -1, 3)
    total += padding[:, None, None] * fill + (1 << (_PRECISION - 1))
    return np.clip(np.floor(total / (1 << _PRECISION)), 0, 255).astype(np.uint8)


_PRECISION = 22  # bits of Pillow's fixed-point filter weights (for 8-bit images)
_GRID = 1 << 18  # filter taps computed at once: bounds memory when the window is huge


@functools.lru_cache(maxsize=32)
def _padded_weights(n: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's bilinear filter from ``side`` input pixels to 32, for the ``n``
    middle ones (those of the image in its padded square): the weights ``[32, n]``,
    and ``[32]`` the weight of the padding, as whole multiples of 2**-22 (float64).
    Cached, as the images of a data set or a folder often share their size.

    The triangle is one input pixel wide on each side, widened by the scale when
    shrinking; each output's weights are normalised over its whole window, padding
    included. The arithmetic follows Pillow's step by step, so the weights are its.
    """
    offset = (side - n) // 2
    scale = side / IMAGE_SIZE
    support = max(scale, 1.0)
    centres = (np.arange(IMAGE_SIZE) + 0.5) * scale
    firsts = np.maximum((centres - support + 0.5).astype(np.int64), 0)  # C's (int) cast
    stops = np.minimum((centres + support + 0.5).astype(np.int64), side)
    span = int((stops - firsts).max())
    weights = np.zeros((IMAGE_SIZE, n))
    padding = np.zeros(IMAGE_SIZE)
    step = max(1, _GRID // span)
    for lo in range(0, IMAGE_SIZE, step):
        rows = slice(lo, lo + step)
        positions = firsts[rows, None] + np.arange(span)
        distances = (positions - centres[rows, None] + 0.5) * (1.0 / support)
        taps = np.maximum(0.0, 1.0 - np.abs(distances))
        taps[positions >= stops[rows, None]] = 0.0
        total = np.cumsum(taps, axis=1)[:, -1:]  # summed in order, as Pillow does
        fixed = np.floor(taps / total * (1 << _PRECISION) + 0.5)
        inside = (positions >= offset) & (positions < offset + n) & (taps > 0)
        row, column = np.nonzero(inside)
        weights[lo + row, positions[row, column] - offset] = fixed[row, column]
        padding[rows] = fixed.sum(axis=1) - np.where(inside, fixed, 0).sum(axis=1)
    weights.flags.writeable = padding.flags.writeable = False  # shared through the cache
    return weights, padding

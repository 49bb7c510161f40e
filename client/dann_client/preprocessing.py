"""The one image-to-array step shared by training, export checks and the client.

The model always sees float32 ``[N, 32, 32, 3]`` RGB in ``[0, 1]``. Anything the
network wants beyond that lives inside the exported graph, so that this module is
the whole contract between a pixel on disk and the model's input.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dann_client.contract import IMAGE_SIZE, INPUT_SHAPE
from dann_client.errors import ImageError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

MNIST_SIZE = 28
_PAD = (IMAGE_SIZE - MNIST_SIZE) // 2


def layout_batch(images: np.ndarray) -> np.ndarray:
    """Bring a uint8 batch into the model's ``[N, 32, 32, 3]`` layout.

    Accepts MNIST-layout grey images ``[N, 28, 28]`` or ``[N, 28, 28, 1]`` (padded
    with 2 black pixels per side, then the channel repeated), grey ``[N, 32, 32]`` or
    ``[N, 32, 32, 1]`` (channel repeated), and ``[N, 32, 32, 3]`` (unchanged).
    Keeping uint8 here lets data sets stay four times smaller in memory than floats.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {images.dtype}")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    # Padding and repeating the channel are one broadcast write into a zeroed
    # batch: the same array as np.pad then np.repeat, about five times faster,
    # which counts because the client calls this once per image file.
    if images.ndim == 3 and images.shape[1:] == (MNIST_SIZE, MNIST_SIZE):
        out = np.zeros((len(images), *INPUT_SHAPE), np.uint8)
        out[:, _PAD : _PAD + MNIST_SIZE, _PAD : _PAD + MNIST_SIZE] = images[..., None]
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

WHITE = (255, 255, 255)


def load_image(
    path: str | Path,
    *,
    background: tuple[int, int, int] = WHITE,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Read one image file into the model layout: uint8 ``[32, 32, 3]`` RGB.

    Raises ``ImageError`` with a short reason (no such file, not an image,
    truncated, too large) so that a caller can report the file and move on.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        _check_regular_file(path)
        with warnings.catch_warnings():
            # Pillow only warns between its two thresholds; refuse those as well.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(image.size, max_pixels)
                image.load()
                return image_to_array(image, background=background)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a directory") from None
    except PermissionError:
        raise ImageError("permission denied") from None
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
        raise ImageError(f"cannot decode image: {error}") from None


def image_to_array(image: PILImage, *, background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """An opened PIL image -> uint8 ``[32, 32, 3]``, by the rules of DESIGN.md.

    EXIF orientation first, so that photos come out upright; then grey images of
    the MNIST (28x28) or model (32x32) size take the exact array path of
    ``layout_batch``, which is what keeps training and serving bit-identical for
    those; everything else is flattened to RGB, padded to a square and resized.
    """
    from PIL import Image, ImageOps

    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode == "1":
        image = image.convert("L")
    grey = _grey_array(image)
    if grey is not None and grey.shape in {(MNIST_SIZE, MNIST_SIZE), (IMAGE_SIZE, IMAGE_SIZE)}:
        return layout_batch(grey[None])[0]
    rgb = _to_rgb(image, grey, background)
    if rgb.size == (IMAGE_SIZE, IMAGE_SIZE):
        return _pixels(rgb)
    # Bilinear in Pillow widens its kernel when shrinking, i.e. it antialiases like
    # tf.image.resize(..., antialias=True), and unlike Lanczos it does not ring.
    resized = _fit_square(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return _pixels(resized)


def load_images(
    paths: Iterable[str | Path], *, background: tuple[int, int, int] = WHITE
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Read many files: the stacked batch of the readable ones, and ``(path, reason)``
    for the others. Convenient for data sets of image files on the training side."""
    arrays, failures = [], []
    for path in paths:
        try:
            arrays.append(load_image(path, background=background))
        except ImageError as error:
            failures.append((str(path), str(error)))
    batch = np.stack(arrays) if arrays else np.zeros((0, *INPUT_SHAPE), np.uint8)
    return batch, failures


def save_image(array: np.ndarray, path: str | Path, *, scale: int = 1) -> None:
    """Write a uint8 ``[H, W, 3]`` array as an image, enlarged ``scale`` times
    with nearest neighbour so that the 32x32 the model sees can be looked at."""
    from PIL import Image

    if scale > 1:
        array = np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="RGB").save(path)


_EXIF_ORIENTATION = 0x0112


def _check_regular_file(path: str | Path) -> None:
    """Refuse what is not a regular file before opening it: opening a FIFO blocks
    until someone writes to it, and a device such as /dev/zero never ends."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError("is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError("not a regular file")
    if info.st_size == 0:
        raise ImageError("empty file")


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


def _to_rgb(image: PILImage, grey: np.ndarray | None, background: tuple[int, int, int]) -> PILImage:
    """Any mode -> RGB, with transparent pixels composited onto ``background``."""
    from PIL import Image

    if grey is not None:
        return Image.fromarray(grey, mode="L").convert("RGB")
    has_alpha = image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in image.info
    if not has_alpha:
        return image if image.mode == "RGB" else image.convert("RGB")
    rgba = image.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, (*background, 255))
    flat.alpha_composite(rgba)
    return flat.convert("RGB")


def _fit_square(image: PILImage) -> PILImage:
    """Pad the short side so the image is square, centred, keeping its aspect.

    The padding takes the median colour of the image's border, so a digit on any
    uniform background (white paper, black MNIST-like, a coloured sign) stays on
    that background instead of gaining bars of a foreign colour.
    """
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    fill = tuple(int(v) for v in np.median(border, axis=0))
    side = max(width, height)
    square = Image.new("RGB", (side, side), fill)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square

"""``mnist-texture``, ``usps-texture``: digits blended onto colour photographs as MNIST-M is.

MNIST-M (Ganin et al.) puts each MNIST digit on a random patch of a natural colour
photograph: per channel, ``|patch - digit|``. Where the digit is black the photograph
shows through unchanged, where its ink is full the photograph is inverted, so the
digit is seen only as a change of colour and texture, a domain far from grey digits.
These variants follow that recipe on a named grey data set as its loader lays it out
(32x32, light ink on black, framed like MNIST); labels and the train/test division
are the data set's own.

They are a visible stand-in, built offline. The real MNIST-M, and the colour-texture
target held back for checking, use BSDS500's photographs, which are not used here:
these use the colour photographs bundled in scikit-image's wheel (:data:`PHOTOGRAPHS`,
read as files, never fetched). Left out: the Hubble deep field and the retina (a black
sky, a black surround outside the picture: their patches would leave many digits as
the source drew them), the colour wheel and the logo (drawings), and the right
motorcycle (the left one's stereo twin). Each photograph is first shrunk
so that its shorter side is at most :data:`SHORTER_SIDE` pixels, about BSDS500's size,
so that a 32x32 patch covers a similar part of a scene.

Train and test images are blended onto disjoint regions of the same photographs, so
that both splits see every photograph's kind of texture but never the same pixels:
each photograph is cut into :data:`BLOCK` x :data:`BLOCK` blocks, the blocks on every
:data:`TEST_EVERY`-th diagonal (``(row + column) % TEST_EVERY == 0``, spread over the
whole picture) hold the test patches and the others the train patches, and a patch
lies inside one block. Each image draws a photograph (uniformly), a block of its split
in it and a position in the block from a fixed seed per split (:data:`SEEDS`), so the
same call returns byte-identical arrays.
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np
from PIL import Image

from dann_client.contract import IMAGE_SIZE
from dann_serve.data.domain import Domain, Split

SUFFIX = "-texture"
PHOTOGRAPHS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "ihc.png",
    "motorcycle_left.png",
    "rocket.jpg",
)
SHORTER_SIDE = 320
BLOCK = 64
TEST_EVERY = 4
SEEDS = {"train": 0, "test": 1}


@functools.cache
def photographs() -> tuple[np.ndarray, ...]:
    """The photographs as uint8 ``[H, W, 3]``, shrunk, read once per process (read-only).

    Read from the installed package's data folder rather than through ``skimage.data``,
    whose functions route through its download registry and import far more."""
    folder = importlib.resources.files("skimage") / "data"
    photos = []
    for name in PHOTOGRAPHS:
        with (folder / name).open("rb") as stream, Image.open(stream) as opened:
            photo = opened.convert("RGB")
        scale = SHORTER_SIDE / min(photo.size)
        if scale < 1:
            size = (round(photo.width * scale), round(photo.height * scale))
            photo = photo.resize(size, Image.Resampling.LANCZOS)
        array = np.asarray(photo)
        array.flags.writeable = False
        photos.append(array)
    return tuple(photos)


def blocks(shape: tuple[int, ...], part: str) -> np.ndarray:
    """int64 ``[K, 2]``: the top-left corners of the blocks of a photograph of ``shape``
    that hold ``part``'s patches."""
    rows, columns = np.meshgrid(
        np.arange(shape[0] // BLOCK), np.arange(shape[1] // BLOCK), indexing="ij"
    )
    test = (rows + columns) % TEST_EVERY == 0
    chosen = test if part == "test" else ~test
    return np.stack([rows[chosen], columns[chosen]], axis=1) * BLOCK


def patch_boxes(count: int, part: str) -> np.ndarray:
    """int64 ``[count, 3]``: for each image, its photograph's index and the top and left
    of its patch, drawn from ``part``'s seed inside ``part``'s blocks."""
    if part not in SEEDS:
        raise ValueError(f"unknown split {part!r}: expected 'train' or 'test'")
    rng = np.random.default_rng(SEEDS[part])
    corners = [blocks(photo.shape, part) for photo in photographs()]
    photo = rng.integers(len(corners), size=count)
    sizes = np.array([len(found) for found in corners])
    block = rng.integers(sizes[photo])
    offsets = rng.integers(BLOCK - IMAGE_SIZE + 1, size=(count, 2))
    starts = np.concatenate(corners)[np.cumsum(sizes)[photo] - sizes[photo] + block]
    return np.column_stack([photo, starts + offsets])


def cut_patches(boxes: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 32, 32, 3]``: the patch each box names, one gather per photograph
    from a strided view of all its windows (no copy but the patches)."""
    patches = np.empty((len(boxes), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for index, photo in enumerate(photographs()):
        mine = np.flatnonzero(boxes[:, 0] == index)
        windows = np.lib.stride_tricks.sliding_window_view(photo, (IMAGE_SIZE,) * 2, (0, 1))
        patches[mine] = windows[boxes[mine, 1], boxes[mine, 2]].transpose(0, 2, 3, 1)
    return patches


def blend(digits: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """MNIST-M's rule, per pixel and channel: ``|patch - digit|``, in uint8 throughout
    (the larger minus the smaller never wraps)."""
    return np.maximum(patches, digits) - np.minimum(patches, digits)


def _texture_split(split: Split, part: str) -> Split:
    patches = cut_patches(patch_boxes(len(split), part))
    return Split(blend(split.images, patches), split.labels)


def texture_variant(domain: Domain) -> Domain:
    """``domain``'s train and test digits blended onto photograph patches, each split
    onto its own regions with its own seed; labels and splits are the domain's."""
    return Domain(
        domain.name + SUFFIX,
        train=_texture_split(domain.train, "train"),
        test=_texture_split(domain.test, "test"),
        note=domain.note,
    )

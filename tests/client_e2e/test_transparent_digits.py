"""Transparent digits come out clear whatever the colour of their ink.

300 real MNIST test digits (../shared/data/mnist) saved three ways: as plain grey PNGs,
and as RGBA PNGs with alpha = ink, once in white ink and once in black ink, as drawing
programs and icon sets export them. With the ``auto`` background (the default) the
white ones are flattened onto black and the black ones onto white, so both are the
digit; flattened onto white, as before, every white one was blank. The model labels
both about as well as the plain PNGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dann_client.background import WHITE
from dann_client.preprocessing import load_images, to_model_input
from dann_serve.data import mnist

MNIST = "mnist"
IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
COUNT = 300
INK = {"white ink": 255, "black ink": 0}


@pytest.fixture(scope="module")
def digits(shared_data) -> tuple[np.ndarray, np.ndarray]:
    """The first 300 MNIST test digits (uint8 [300, 28, 28], light ink) and labels."""
    root = shared_data(MNIST, IMAGES) / MNIST
    pixels = mnist.read_idx(root / IMAGES, mnist.IMAGES_MAGIC)[:COUNT]
    return pixels, mnist.read_idx(root / LABELS, mnist.LABELS_MAGIC)[:COUNT]


def _save(directory: Path, images: list[np.ndarray], mode: str) -> list[Path]:
    directory.mkdir()
    paths = [directory / f"{index:03d}.png" for index in range(len(images))]
    for path, image in zip(paths, images, strict=True):
        Image.fromarray(image, mode).save(path)
    return paths


@pytest.fixture(scope="module")
def files(digits, tmp_path_factory) -> dict[str, list[Path]]:
    """The digits as plain grey PNGs, and as RGBA with alpha = ink in each ink colour."""
    pixels, _ = digits
    root = tmp_path_factory.mktemp("transparent")
    made = {"plain": _save(root / "plain", list(pixels), "L")}
    for name, level in INK.items():
        rgba = np.zeros((*pixels.shape, 4), np.uint8)
        rgba[..., :3] = level
        rgba[..., 3] = pixels
        made[name] = _save(root / name.replace(" ", "-"), list(rgba), "RGBA")
    return made


def test_both_inks_come_out_as_the_digit(digits, files, tmp_path):
    """Pixel for pixel: white ink is the digit on black, black ink the digit on white,
    as the same digit drawn opaque (RGB) comes out; flattened onto white, the white
    ink was blank."""
    pixels, _ = digits
    opaque = np.repeat(pixels[..., None], 3, axis=-1)
    references = {
        "white ink": _save(tmp_path / "light", list(opaque), "RGB"),
        "black ink": _save(tmp_path / "dark", list(255 - opaque), "RGB"),
    }
    for name in INK:
        seen, failed = load_images(files[name])
        assert not failed
        want = load_images(references[name])[0]
        assert np.abs(seen.astype(int) - want).max() <= 1, name
        assert seen.reshape(COUNT, -1).std(axis=1).min() > 20, name  # every one has ink
    blank = load_images(files["white ink"], background=WHITE)[0]
    assert blank.min() == 255  # the failure, still there when asked for


def _accuracy(in_process, paths: list[Path], labels: np.ndarray, **options) -> float:
    images, failed = load_images(paths, **options)
    assert not failed
    outputs = in_process.signatures["predict_label"](images=tf.constant(to_model_input(images)))
    return float((outputs["label"].numpy() == labels).mean())


def test_transparent_digits_are_labelled_about_as_well_as_plain_ones(in_process, digits, files):
    _, labels = digits
    plain = _accuracy(in_process, files["plain"], labels)
    assert plain > 0.2  # the test model reads MNIST better than chance
    for name in INK:
        accuracy = _accuracy(in_process, files[name], labels)
        assert accuracy >= plain - 0.08, (name, accuracy, plain)
    blank = _accuracy(in_process, files["white ink"], labels, background=WHITE)
    assert blank < plain - 0.08  # so the comparison above can fail

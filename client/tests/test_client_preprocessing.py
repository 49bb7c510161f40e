"""Image files and arrays -> the model's float32 32x32 RGB input: MNIST's grey 28x28
padded bit for bit as in training, other sizes and modes squared and resized, and
unreadable files refused with a reason (docs/ARCHITECTURE.md, Preprocessing)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dann_client.errors import ImageError
from dann_client.framing import border_colour
from dann_client.preprocessing import (
    _fit_square,
    image_to_array,
    layout_batch,
    load_image,
    load_images,
    save_image,
    to_model_input,
)

RED, BLUE, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def _mnist_like() -> np.ndarray:
    """A 0 laid out as MNIST lays out its digits, uint8 grey ``[28, 28]``: white on black,
    antialiased, its ink in a box 20 pixels tall, centred on (14, 14). Random pixels
    would not do: uniform grey noise counts as ink on a plain background about half the
    time (a quarter of its edge pixels lie within 32 levels of the most common one), and
    would be framed, as any 28x28 or 32x32 digit off MNIST's layout is."""
    big = Image.new("L", (28 * 4, 28 * 4), 0)
    ImageDraw.Draw(big).ellipse([9 * 4, 4 * 4, 19 * 4, 24 * 4], outline=255, width=3 * 4)
    return np.asarray(big.resize((28, 28), Image.Resampling.BILINEAR))


def test_mnist_grey_28x28_is_padded_bit_for_bit(tmp_path):
    digit = _mnist_like()
    Image.fromarray(digit).save(tmp_path / "digit.png")

    loaded = load_image(tmp_path / "digit.png")

    assert loaded.dtype == np.uint8 and loaded.shape == (32, 32, 3)
    np.testing.assert_array_equal(loaded, layout_batch(digit[None])[0])
    expected = to_model_input(digit[None])
    assert to_model_input(loaded[None]).tobytes() == expected.tobytes()


def test_rgb_32x32_passes_through_unchanged(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "svhn.png")
    np.testing.assert_array_equal(load_image(tmp_path / "svhn.png"), pixels)


def test_grey_32x32_repeats_the_channel(tmp_path):
    grey = 255 - np.pad(_mnist_like(), 2)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(load_image(tmp_path / "grey.png"), np.stack([grey] * 3, -1))


def test_rgba_transparency_is_flattened_onto_the_background(tmp_path):
    pixels = np.zeros((32, 32, 4), np.uint8)
    pixels[...] = (0, 255, 0, 0)  # fully transparent green
    pixels[6:26, 11:21] = (*BLUE, 255)  # an opaque blue bar where MNIST puts its ink

    Image.fromarray(pixels, "RGBA").save(tmp_path / "rgba.png")

    on_white = load_image(tmp_path / "rgba.png")
    on_black = load_image(tmp_path / "rgba.png", background=BLACK)

    assert on_white.shape == (32, 32, 3)
    assert tuple(on_white[10, 15]) == BLUE and tuple(on_white[10, 25]) == WHITE
    assert tuple(on_black[10, 15]) == BLUE and tuple(on_black[10, 25]) == BLACK


def test_palette_with_transparency_is_flattened(tmp_path):
    image = Image.new("P", (40, 20), 0)
    image.putpalette([0, 0, 0, *RED] + [0] * (254 * 3))
    image.paste(1, (10, 5, 20, 15))  # a red square, the rest index 0 = transparent
    image.save(tmp_path / "palette.png", transparency=0)
    assert Image.open(tmp_path / "palette.png").mode == "P"

    loaded = load_image(tmp_path / "palette.png")

    assert loaded.shape == (32, 32, 3)
    assert tuple(loaded[16, 16]) == RED  # framed: the square in the middle
    assert tuple(loaded[16, 2]) == WHITE  # transparent, not the palette's black


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    noise = np.random.default_rng(4).integers(0, 129, (32, 32))  # below half a level
    values = (np.pad(_mnist_like(), 2).astype(np.uint16) * 257 + noise).clip(0, 65535)
    values = values.astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"

    loaded = load_image(tmp_path / "grey16.png")

    expected = np.rint(values / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(loaded, np.stack([expected] * 3, -1))


def test_16_bit_grey_of_another_size_becomes_rgb_32x32(tmp_path):
    Image.fromarray(np.full((50, 50), 65535, np.uint16)).save(tmp_path / "big16.png")
    loaded = load_image(tmp_path / "big16.png")
    assert loaded.shape == (32, 32, 3) and loaded.min() == 255


def test_cmyk_jpeg_comes_out_rgb(tmp_path):
    Image.new("CMYK", (48, 48), (255, 0, 0, 0)).save(tmp_path / "cyan.jpg", quality=95)
    loaded = load_image(tmp_path / "cyan.jpg")
    assert loaded.shape == (32, 32, 3)
    np.testing.assert_allclose(loaded.reshape(-1, 3).mean(axis=0), (0, 255, 255), atol=8)


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """A photograph-like uint8 RGB texture: smooth blobs of colour under fine noise, no
    plain background anywhere."""
    rng = np.random.default_rng(seed)
    blobs = rng.uniform(0, 255, (height // 8 + 1, width // 8 + 1, 3))
    smooth = np.asarray(
        Image.fromarray(blobs.astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    )
    return np.clip(smooth + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)


def test_exif_rotated_photo_comes_out_upright(tmp_path):
    pixels = _texture(80, 40, seed=6)
    redder = np.array([120, -120, -120])
    pixels[:40] = np.clip(pixels[:40].astype(int) + redder, 0, 255)  # red top half
    upright = Image.fromarray(pixels)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)

    loaded = load_image(tmp_path / "photo.jpg").astype(int)

    assert loaded.shape == (32, 32, 3)
    red = loaded[..., 0] - loaded[..., 1]
    assert red[2:14, 8:24].mean() > red[18:30, 8:24].mean() + 100  # red on top, as viewed
    reference = image_to_array(upright)
    assert np.abs(loaded - reference).mean() < 4


def test_a_non_square_photograph_is_padded_with_its_border_colour_then_resized(tmp_path):
    pixels = _texture(30, 90, seed=7)
    pixels[:2] = pixels[-2:] = pixels[:, :2] = pixels[:, -2:] = (10, 20, 30)
    Image.fromarray(pixels).save(tmp_path / "wide.png")

    loaded = load_image(tmp_path / "wide.png")

    assert loaded.shape == (32, 32, 3)
    assert (loaded[:10] == (10, 20, 30)).all() and (loaded[-10:] == (10, 20, 30)).all()
    assert np.abs(loaded[12:20].astype(int) - (10, 20, 30)).max() > 100  # the photo, whole


def _padded_then_resized(image: Image.Image) -> np.ndarray:
    """The rule as first written, kept here as the reference: pad the RGB image to a
    square with its border's median colour, then resize the square to 32x32."""
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    fill = tuple(int(v) for v in np.median(border, axis=0))
    side = max(image.size)
    square = Image.new("RGB", (side, side), fill)
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return np.asarray(square.resize((32, 32), Image.Resampling.BILINEAR))


@pytest.mark.parametrize(
    "size",
    [(28, 40), (40, 28), (60, 20), (20, 60), (33, 32), (31, 17), (17, 31), (3, 500), (500, 3)],
)
def test_fitting_before_padding_agrees_with_padding_before_resizing(size):
    rng = np.random.default_rng(sum(size))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    pixels[:, :2] = pixels[:, -2:] = pixels[:2] = pixels[-2:] = (10, 20, 30)  # a uniform frame
    image = Image.fromarray(pixels)
    fitted = _fit_square(image, border_colour(pixels)).astype(int)
    difference = fitted - _padded_then_resized(image)
    # Wide images take Pillow's two passes in the same order: the same pixels. Tall
    # ones take them the other way round, and a pixel may round the other way.
    assert np.abs(difference).max() <= (0 if size[0] > size[1] else 1)


# Runs the command in a child capped at 2 GiB of address space (a version that pads
# first dies there, not the machine) and prints its exit status, seconds and peak RSS.
# Measured from this small process: Linux carries the RSS of the process that forked
# across exec into ru_maxrss, and pytest's own would swamp the figure.
_MEASURE = """
import resource, subprocess, sys, time
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
started = time.perf_counter()
code = "from dann_client.cli import main; main()"
status = subprocess.call([sys.executable, "-c", code, *sys.argv[1:]], preexec_fn=cap)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(status, time.perf_counter() - started, peak)
"""


def test_a_one_pixel_wide_image_costs_what_its_output_does(tmp_path):
    """A 1 x 100,000 PNG is 300 bytes; padded to a square first it would be 30 GB."""
    path = tmp_path / "needle.png"
    Image.new("L", (1, 100_000), 200).save(path)  # all border: padded with its own grey
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURE, "preprocess", str(path), "-o", str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
        check=True,
    )
    status, seconds, peak_kib = measured.stdout.split()
    assert status == "0", measured.stderr
    assert int(peak_kib) < 200 * 1024  # about 45 MB here
    assert float(seconds) < 5  # about 0.3 s here, nearly all of it Python starting up
    seen = np.asarray(Image.open(tmp_path / "o.png"))
    assert seen.shape == (32, 32, 3) and (seen == 200).all()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size but holds no pixel data: what a bomb looks like
    to a reader that checks the header before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("side", "size"),
    [
        (8_000, "8000x8000 pixels"),
        (11_000, "121,000,000 pixels"),
        (30_000, "900,000,000 pixels"),
    ],  # Pillow warns or refuses in Image.open
)
def test_decompression_bomb_is_refused_with_a_clear_message(tmp_path, side, size):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(side, side))
    with pytest.raises(ImageError, match=f"{size}, over the limit .* decompression bomb"):
        load_image(path)


def test_the_pixel_limit_is_adjustable(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "small.png")
    with pytest.raises(ImageError, match="20x20 pixels, over the limit of 100"):
        load_image(tmp_path / "small.png", max_pixels=100)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        (b"not an image", "not an image"),
        ("truncated", "cannot decode"),
        (b"", "empty file"),
        ("fifo", "not a regular file"),
        ("device", "not a regular file"),
        ("directory", "is a directory"),
        ("loop", "symbolic link loop"),
        ("long name", "file name too long"),
        ("under a file", "no such file"),
    ],
)
def test_unreadable_files_raise_image_error_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    if content == "truncated":
        Image.new("RGB", (64, 64), RED).save(path)
        path.write_bytes(path.read_bytes()[:60])
    elif content == "fifo":
        os.mkfifo(path)  # opening it to read would wait for a writer forever
    elif content == "device":
        path.symlink_to(os.devnull)
    elif content == "directory":
        path.mkdir()
    elif content == "loop":
        path.symlink_to(tmp_path / "other.png")
        (tmp_path / "other.png").symlink_to(path)
    elif content == "long name":
        path = tmp_path / ("x" * 300 + ".png")
    elif content == "under a file":
        path.write_bytes(b"a file, not a directory")
        path = path / "inside.png"
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        load_image(path)


def test_load_images_keeps_the_readable_and_reports_the_rest(tmp_path):
    Image.new("L", (28, 28), 7).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"junk")
    batch, failures = load_images([tmp_path / "a.png", tmp_path / "b.png"])
    assert batch.shape == (1, 32, 32, 3)
    assert failures == [(str(tmp_path / "b.png"), "not an image file Pillow can read")]


def test_save_image_writes_what_load_image_reads(tmp_path):
    pixels = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    save_image(pixels, tmp_path / "seen.png", scale=3)
    with Image.open(tmp_path / "seen.png") as written:
        assert written.size == (96, 96)
    save_image(pixels, tmp_path / "same.png")
    np.testing.assert_array_equal(load_image(tmp_path / "same.png"), pixels)


def test_a_saved_model_input_is_read_back_as_it_is_not_framed_again(tmp_path):
    """A digit laid out otherwise than the framing rule would (here filling its frame,
    as a data set's own layout may) comes back from ``save_image`` unchanged: it is
    the model's input, which ``dann-serve samples`` and the demo then serve."""
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[1:31, 12:20] = 255  # a 1, 30 pixels tall: the rule would shrink it to 20
    save_image(pixels, tmp_path / "seen.png")
    np.testing.assert_array_equal(load_image(tmp_path / "seen.png"), pixels)
    Image.fromarray(pixels).save(tmp_path / "users.png")  # a user's file: framed
    assert not np.array_equal(load_image(tmp_path / "users.png"), pixels)

"""Framing (docs/ARCHITECTURE.md, Preprocessing): a digit on a plain background reaches
the model framed as MNIST frames its digits, whatever its crop, colours, margins or size
(the model's own 28x28 and 32x32 included); a photograph or texture is fitted whole; a
digit laid out as MNIST lays it out already passes through untouched, on its own
background."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dann_client.framing import border_colour, difference, place
from dann_client.preprocessing import (
    _fit_square,
    encode_png,
    image_to_array,
    lay_out_images,
    layout_batch,
    load_image,
)

SCALE = 4  # the digit is drawn this many times larger, then reduced: antialiased strokes


def _digit(width: int = 30, height: int = 40) -> np.ndarray:
    """A handwritten-like 2, black ink on white, uint8 grey ``[height, width]``, with a
    few pixels of margin; its ink is heavier at the bottom, so that its centre of mass
    is not its box's centre."""
    big = Image.new("L", (width * SCALE, height * SCALE), 255)
    draw = ImageDraw.Draw(big)
    stroke = 3 * SCALE

    def at(x: float, y: float) -> tuple[float, float]:
        return (x * width * SCALE, y * height * SCALE)

    draw.arc([at(0.2, 0.12), at(0.8, 0.5)], start=180, end=30, fill=0, width=stroke)
    draw.line([at(0.76, 0.4), at(0.2, 0.86)], fill=0, width=stroke)
    draw.line([at(0.2, 0.86), at(0.85, 0.86)], fill=0, width=stroke + SCALE)
    return np.asarray(big.resize((width, height), Image.Resampling.BILINEAR))


def _ink_box(grey: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((grey < 255).any(axis=1))
    columns = np.flatnonzero((grey < 255).any(axis=0))
    return rows[0], rows[-1] + 1, columns[0], columns[-1] + 1


def _framed(grey: np.ndarray) -> np.ndarray:
    return image_to_array(Image.fromarray(np.ascontiguousarray(grey))).astype(int)


def _tight_digit() -> np.ndarray:
    digit = _digit()
    top, bottom, left, right = _ink_box(digit)
    return digit[top:bottom, left:right]


def _square(tight: np.ndarray, margin: int, size: int) -> np.ndarray:
    """``tight`` centred in a square of white ``margin`` pixels beyond its longer side,
    resized to ``size`` x ``size``: with no margin, a square cut tight to the ink."""
    height, width = tight.shape
    side = max(height, width) + 2 * margin
    rows, columns = side - height, side - width
    square = np.pad(
        tight,
        ((rows // 2, rows - rows // 2), (columns // 2, columns - columns // 2)),
        constant_values=255,
    )
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR))


def _white_border(laid_out: np.ndarray) -> bool:
    return bool((laid_out[:2] == 255).all() and (laid_out[-2:] == 255).all()) and bool(
        (laid_out[:, :2] == 255).all() and (laid_out[:, -2:] == 255).all()
    )


def test_a_28x28_black_on_white_digit_keeps_a_white_border(tmp_path):
    """In MNIST's layout it passes through padded with white, otherwise untouched; cut
    tight to its ink, it is framed, on white as well."""
    paper = _framed(_digit())[2:30, 2:30, 0].astype(np.uint8)  # MNIST's 28x28 layout
    Image.fromarray(paper).save(tmp_path / "digit.png")
    for laid_out in (layout_batch(paper[None])[0], load_image(tmp_path / "digit.png")):
        assert _white_border(laid_out)
        np.testing.assert_array_equal(laid_out[2:30, 2:30, 1], paper)  # otherwise untouched
    tight = _square(_tight_digit(), 0, 28)
    Image.fromarray(tight).save(tmp_path / "tight.png")
    framed = load_image(tmp_path / "tight.png")
    assert _white_border(framed) and (framed != layout_batch(tight[None])[0]).any()


def test_each_image_of_a_batch_is_padded_with_its_own_background():
    white_on_black = np.zeros((28, 28), np.uint8)
    white_on_black[10:18, 12:16] = 255
    batch = layout_batch(np.stack([white_on_black, 255 - white_on_black]))
    assert batch[0, 0, 0].tolist() == [0, 0, 0] and batch[1, 0, 0].tolist() == [255, 255, 255]


def test_tight_full_frame_and_wide_margin_copies_give_the_same_input():
    digit = _digit()
    tight = _tight_digit()
    assert (tight[0] < 255).any() and (tight[:, 0] < 255).any()  # the ink touches the edges
    wide = np.pad(tight, ((50, 30), (20, 70)), constant_values=255)
    reference = _framed(tight)
    for copy in (digit, wide):
        np.testing.assert_array_equal(_framed(copy), reference)
    # The same digit drawn at twice and three times the resolution: its box rounds
    # to a pixel more or less, the layout is the same (a shift of one pixel would
    # differ by about 12 levels on average).
    for times in (2, 3):
        size = (wide.shape[1] * times, wide.shape[0] * times)
        larger = _framed(np.asarray(Image.fromarray(wide).resize(size)))
        assert np.abs(larger - reference).mean() < 6
        assert np.abs(_centre(larger) - _centre(reference)).max() < 0.5


@pytest.mark.parametrize("size", [28, 32])
def test_digits_of_the_models_own_sizes_are_framed_whatever_their_crop(size):
    """A 28x28 or 32x32 copy of the digit, cut tight to its ink, full-frame or in wide
    margins, black on white, white on black or RGB, comes out as the digit framed from
    its larger original does: within a few grey levels on average (each copy was
    resampled once more, to its small size), its centre within about half a pixel, as
    the placement rounds it (a pixel of shift would differ by about 12 levels on
    average; the copies laid out unframed differ by 15 to 60)."""
    tight = _tight_digit()
    reference = _framed(tight)
    for margin in (0, 3, 10):  # the ink's longer side spans all, 80% or 60% of the square
        copy = _square(tight, margin, size)
        for pixels, negative in ((copy, False), (255 - copy, True), (np.dstack([copy] * 3), False)):
            framed = _framed(pixels)
            framed = 255 - framed if negative else framed
            assert np.abs(framed - reference).mean() < 8, (margin, negative)
            assert np.abs(_centre(framed) - _centre(reference)).max() < 0.6, (margin, negative)


def test_a_digit_laid_out_as_mnist_lays_it_out_passes_through_untouched():
    """Framed once, read again as a 32x32 file (RGB or grey) or as its 28x28 middle, it
    is the same bytes, and so is a copy a pixel off MNIST's centre (within the rule's
    slack, as a tenth of MNIST's own digits are); two or three pixels off, it is framed
    back to where it was."""
    laid_out = _framed(_digit()).astype(np.uint8)
    for shift in ((0, 0), (1, 0), (0, -1), (1, 1)):
        moved = np.roll(laid_out, shift, axis=(0, 1))  # paper all around: white rolls in
        for image in (moved, moved[..., 0], moved[2:30, 2:30, 0]):
            np.testing.assert_array_equal(_framed(image), layout_batch(image[None])[0], shift)
    for shift in ((2, 0), (0, -3), (3, 3)):
        moved = np.roll(laid_out, shift, axis=(0, 1))
        np.testing.assert_array_equal(_framed(moved), laid_out, shift)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_32x32_photograph_or_texture_passes_through_untouched(seed):
    photo = _texture(32, 32, seed)
    photo[10:20, 12:18] = 0  # a dark object on it, as in a photograph of a digit
    assert place(photo, border_colour(photo)) is None
    np.testing.assert_array_equal(image_to_array(Image.fromarray(photo)), photo)


def test_a_data_set_that_keeps_its_own_layout_is_not_framed(tmp_path):
    """``keep_layout`` (MNIST-M's loader): a 32x32 image is taken as it is, even a digit
    cut tight to its ink, which a user's file would have framed."""
    tight = np.dstack([_square(_tight_digit(), 0, 32)] * 3)
    Image.fromarray(tight).save(tmp_path / "tight.png")
    np.testing.assert_array_equal(load_image(tmp_path / "tight.png", keep_layout=True), tight)
    assert (load_image(tmp_path / "tight.png") != tight).any()


def test_the_clients_own_pngs_are_taken_as_laid_out(tmp_path):
    """What the client sends ``predict_image`` (``encode_png``) it has laid out itself,
    and comes back as it went, even off MNIST's layout (a data set's, fonts' for one);
    the same pixels in a PNG of another writer are a user's file, and framed."""
    tight = np.dstack([_square(_tight_digit(), 0, 32)] * 3)
    (tmp_path / "marked.png").write_bytes(encode_png(tight))
    Image.fromarray(tight).save(tmp_path / "plain.png")
    np.testing.assert_array_equal(load_image(tmp_path / "marked.png"), tight)
    assert (load_image(tmp_path / "plain.png") != tight).any()


def _centre(framed: np.ndarray) -> np.ndarray:
    """Row and column of the centre of mass of a framed dark-on-light digit's ink."""
    ink = 255 - framed[..., 0]
    return np.array([(ink.sum(axis=axis) * np.arange(32)).sum() / ink.sum() for axis in (1, 0)])


def _assert_mnist_layout(framed: np.ndarray) -> None:
    """A dark-on-light framed digit: its ink's box is 20 pixels on its longer side, its
    centre of mass on pixel (16, 16) of 32x32 (MNIST's (14, 14) of 28x28) within half a
    pixel, on paper all around."""
    ink = 255 - framed[..., 0]
    rows, columns = np.flatnonzero(ink.max(axis=1) > 127), np.flatnonzero(ink.max(axis=0) > 127)
    assert max(rows[-1] - rows[0], columns[-1] - columns[0]) + 1 == 20
    assert np.abs(_centre(framed) - 16).max() <= 0.5
    assert (framed[:2] == 255).all() and (framed[:, -2:] == 255).all()


def test_the_framed_digit_follows_mnists_layout():
    _assert_mnist_layout(_framed(_digit(30, 40)))
    _assert_mnist_layout(_framed(_digit(60, 30)))  # wider than tall: the box is 20 wide


def test_light_on_dark_and_dark_on_light_are_both_framed():
    digit = _digit()
    dark_on_light, light_on_dark = _framed(digit), _framed(255 - digit)
    _assert_mnist_layout(dark_on_light)
    assert light_on_dark[0, 0, 0] == 0
    assert np.abs((255 - light_on_dark) - dark_on_light).max() <= 1


def test_coloured_ink_on_a_coloured_ground_is_framed():
    digit = _digit()[..., None] / 255.0
    ink, ground = np.array([30, 40, 160]), np.array([240, 220, 90])  # blue on yellow
    coloured = np.rint(ground * digit + ink * (1 - digit)).astype(np.uint8)
    framed = image_to_array(Image.fromarray(coloured))
    assert (framed[0] == ground).all() and (framed[:, -1] == ground).all()
    # Laid out as the grey digit is: red runs from the ink's 30 to the ground's 240.
    red = np.rint((framed[..., 0] - 30) * (255 / 210)).astype(int)
    _assert_mnist_layout(np.dstack([red] * 3))
    assert np.abs(red - _framed(_digit())[..., 0]).mean() < 5


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth blobs of colour under fine noise: a photograph's tones, no plain ground."""
    rng = np.random.default_rng(seed)
    blobs = rng.uniform(0, 255, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(blobs).resize((width, height), Image.Resampling.BICUBIC))
    return np.clip(smooth + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_photograph_is_fitted_not_cropped(seed):
    photo = _texture(60, 90, seed)
    photo[20:40, 40:50] = 0  # a dark object that must not be cut out of it
    image = Image.fromarray(photo)
    assert place(photo, border_colour(photo)) is None
    fitted = image_to_array(image)
    np.testing.assert_array_equal(fitted, _fit_square(image, border_colour(photo)))
    assert np.abs(fitted[8:24].astype(int) - photo[::3, ::3][:16, :30].mean()).mean() > 10


def test_faint_marks_on_paper_are_not_taken_for_ink():
    """Ink must differ from the background by at least 64 levels: a pale smudge is
    fitted whole like any image, not blown up to fill the box."""
    paper = np.full((40, 30), 250, np.uint8)
    paper[10:20, 10:15] = 200
    assert place(np.dstack([paper] * 3), np.array([250, 250, 250])) is None
    fitted = _framed(paper)
    assert (fitted[:, :6] == 250).all()  # the fit's padding: 30 of 40 wide -> 8 per side


def test_the_ink_is_measured_from_the_background_in_its_most_different_channel():
    pixels = np.full((10, 12, 3), (10, 200, 30), np.uint8)
    pixels[3, 4] = (10, 100, 30)
    np.testing.assert_array_equal(border_colour(pixels), [10, 200, 30])
    assert difference(pixels, border_colour(pixels))[3, 4] == 100


def test_lay_out_images_reads_arrays_as_their_files_are_read(tmp_path):
    digits = np.stack([_digit(), 255 - _digit()])
    for index, digit in enumerate(digits):
        Image.fromarray(digit).save(tmp_path / f"{index}.png")
    laid_out = lay_out_images(digits)
    for index in range(2):
        np.testing.assert_array_equal(laid_out[index], load_image(tmp_path / f"{index}.png"))

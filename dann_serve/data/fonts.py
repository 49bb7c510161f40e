"""``fonts``: synthetic printed digits, rendered offline from TrueType fonts.

A labelled source domain that needs no download: the TrueType fonts that ship
with matplotlib (DejaVu, STIX, Computer Modern) render each digit with a random
colour pair, size, rotation, position, outline weight and blur. Everything comes
from one seeded generator, so the same seed gives byte-identical arrays on any
machine with the same Pillow and fonts.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from dann_serve.data.domain import Domain, Split

TRAIN_SIZE = 20_000
TEST_SIZE = 2_000
DEFAULT_SEED = 0

_CANVAS = 64
_RENDER_SIZE = 44
_OUT = 32
# Faces whose digits are ordinary lining figures (cmmi10's are old-style, the
# symbol and size-variant faces have none).
_FACES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmti10.ttf",
)


@cache
def _fonts() -> tuple[ImageFont.FreeTypeFont, ...]:
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return tuple(ImageFont.truetype(str(folder / face), _RENDER_SIZE) for face in _FACES)


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A background and an ink colour that differ enough in luminance to be read."""
    weights = np.array([0.299, 0.587, 0.114])
    while True:
        background, ink = rng.integers(0, 256, size=(2, 3))
        if abs(float(weights @ background) - float(weights @ ink)) >= 70:
            return background.astype(np.float32), ink.astype(np.float32)


def render_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 ``[32, 32, 3]`` image of ``digit``, every variation drawn from ``rng``."""
    fonts = _fonts()
    font = fonts[rng.integers(len(fonts))]
    mask = Image.new("L", (_CANVAS, _CANVAS), 0)
    stroke = int(rng.integers(0, 3))
    ImageDraw.Draw(mask).text(
        (_CANVAS / 2, _CANVAS / 2),
        str(digit),
        fill=255,
        font=font,
        anchor="mm",
        stroke_width=stroke,
        stroke_fill=255,
    )
    mask = mask.rotate(float(rng.uniform(-18, 18)), resample=Image.Resampling.BILINEAR)
    left, top, right, bottom = mask.getbbox() or (0, 0, _CANVAS, _CANVAS)
    glyph = mask.crop((left, top, right, bottom))
    height = float(rng.uniform(17, 28))
    scale = height / glyph.height
    width = max(1, min(_OUT, round(glyph.width * scale * rng.uniform(0.85, 1.15))))
    glyph = glyph.resize((width, max(1, min(_OUT, round(height)))), Image.Resampling.LANCZOS)
    placed = Image.new("L", (_OUT, _OUT), 0)
    x = (_OUT - glyph.width) // 2 + int(rng.integers(-3, 4))
    y = (_OUT - glyph.height) // 2 + int(rng.integers(-2, 3))
    placed.paste(glyph, (x, y))
    blur = float(rng.uniform(0.0, 1.2))
    if blur > 0.3:
        placed = placed.filter(ImageFilter.GaussianBlur(blur))
    alpha = np.asarray(placed, dtype=np.float32)[..., None] / 255.0
    background, ink = _colour_pair(rng)
    noise = rng.normal(0.0, rng.uniform(0, 12), size=(_OUT, _OUT, 1)).astype(np.float32)
    image = background * (1.0 - alpha) + ink * alpha + noise
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def generate(count: int, seed: int) -> Split:
    """``count`` images with balanced labels, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % 10
    rng.shuffle(labels)
    images = np.empty((count, _OUT, _OUT, 3), dtype=np.uint8)
    for i, digit in enumerate(labels):
        images[i] = render_digit(int(digit), rng)
    return Split(images, labels)


@cache
def load_fonts(seed: int = DEFAULT_SEED) -> Domain:
    """The fixed train (20,000) and test (2,000) splits, drawn from disjoint streams."""
    return Domain(name="fonts", train=generate(TRAIN_SIZE, seed=seed * 2), test=fonts_test(seed))


@cache
def fonts_test(seed: int) -> Split:
    """The test split alone: its stream is its own, so export and evaluation, which read
    no training image, skip rendering the 20,000 of them (most of a fonts export's time)."""
    return generate(TEST_SIZE, seed=seed * 2 + 1)

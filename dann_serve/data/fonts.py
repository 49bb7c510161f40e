"""``fonts``: synthetic printed digits, rendered offline from TrueType fonts.

A labelled source domain that needs no download: the TrueType fonts that ship
with matplotlib (DejaVu, STIX, Computer Modern) render each digit with a random
colour pair, size, rotation, position, outline weight and blur. Everything comes
from one seeded generator, so the same seed gives byte-identical arrays on any
machine with the same Pillow, text libraries (FreeType, Raqm), NumPy and fonts.

Rendering the 22,000 images takes about 6 s, so the arrays are kept in the cache
folder (:mod:`cache_files`) after the first time and read back in a tenth of a second.
The file records everything the pixels depend on (this module's source, the versions
above and the font files' bytes), so an upgrade renders again, over the old file,
rather than reading images another renderer drew.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from dann_serve.data.cache_files import Stale, default_cache_dir, read_arrays, write_arrays
from dann_serve.data.datadir import checked_labels
from dann_serve.data.domain import Domain, Split
from dann_serve.progress import progress_bar

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


def _font_files() -> list[Path]:
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [folder / face for face in _FACES]


@cache
def _fonts() -> tuple[ImageFont.FreeTypeFont, ...]:
    return tuple(ImageFont.truetype(str(path), _RENDER_SIZE) for path in _font_files())


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


def generate(count: int, seed: int, progress: bool = False) -> Split:
    """``count`` images with balanced labels, deterministic for ``seed``; ``progress``:
    a bar on a terminal (the training split takes seconds)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % 10
    rng.shuffle(labels)
    images = np.empty((count, _OUT, _OUT, 3), dtype=np.uint8)
    bar = progress_bar(labels, show=progress, desc="rendering fonts", unit="image")
    for i, digit in enumerate(bar):
        images[i] = render_digit(int(digit), rng)
    return Split(images, labels)


@cache
def load_fonts(seed: int = DEFAULT_SEED) -> Domain:
    """The fixed train (20,000) and test (2,000) splits, drawn from disjoint streams."""
    return Domain(name="fonts", train=rendered(TRAIN_SIZE, seed=seed * 2), test=fonts_test(seed))


@cache
def fonts_test(seed: int) -> Split:
    """The test split alone: its stream is its own, so export and evaluation, which read
    no training image, skip rendering the 20,000 of them (most of a fonts export's time)."""
    return rendered(TEST_SIZE, seed=seed * 2 + 1)


_WHAT, _INSTEAD = "fonts cache", "rendering again"


def rendered(count: int, seed: int) -> Split:
    """``generate(count, seed)``, read from the cache folder when an earlier run
    rendered it with this renderer, else rendered and kept there (one file per seed
    and count: a new renderer's images replace the old ones')."""
    folder = default_cache_dir()
    if folder is None:
        return generate(count, seed, progress=True)
    path = folder / f"fonts-{seed}-{count}.npz"
    version = renderer_version()

    def parse(stored: dict[str, np.ndarray]) -> Split:
        if stored["renderer"].tobytes().decode() != version:
            raise Stale("rendered by another version of the renderer")
        images = stored["images"]
        if images.dtype != np.uint8 or images.shape != (count, _OUT, _OUT, 3):
            raise ValueError(f"images of {images.dtype} {images.shape}, not {count} of them")
        return Split(images, checked_labels("fonts", path, stored["labels"], count))

    split = read_arrays(path, _WHAT, _INSTEAD, parse)
    if split is None:
        split = generate(count, seed, progress=True)
        renderer = np.frombuffer(version.encode(), np.uint8)
        arrays = {"images": split.images, "labels": split.labels, "renderer": renderer}
        write_arrays(path, arrays, _WHAT)
    return split


@cache
def renderer_version() -> str:
    """Changes whenever :func:`generate` could draw other pixels for the same seed: this
    module, the libraries that draw and lay out text, NumPy's random streams, the fonts."""
    import PIL
    from PIL import features

    digest = hashlib.sha256(Path(__file__).read_bytes())
    libraries = {name: features.version(name) for name in _TEXT_LIBRARIES}
    digest.update(f"\0pillow {PIL.__version__} {libraries} numpy {np.__version__}".encode())
    for path in _font_files():
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# FreeType draws the glyphs; with Raqm (and FriBiDi, HarfBuzz) present, Pillow lays text
# out through it rather than its basic engine, and some glyphs' pixels differ.
_TEXT_LIBRARIES = ("freetype2", "raqm", "fribidi", "harfbuzz")

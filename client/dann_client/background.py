"""Transparency: the colour an image with alpha is flattened onto (``--background``).

The model sees opaque RGB, so transparent pixels must take some colour, and a fixed
one fails half of the images: a white digit on a transparent background (an icon, a
drawing app's export) flattened onto white is blank, and so is a black one flattened
onto black. ``auto``, the default, therefore looks at the ink: if the image has any
alpha < 255, it is flattened onto black when the alpha-weighted mean luminance of its
pixels is >= 0.5 (light ink), else onto white. The rule's numbers live in
``dann_client.contract`` because ``predict_image`` applies the same rule in the graph.
A fixed colour (``white``, ``black``, ``#202020``, ...) can still be chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dann_client.contract import BACKGROUND_AUTO, LIGHT_INK_LUMINANCE, LUMINANCE_WEIGHTS

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

AUTO = BACKGROUND_AUTO
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)

Background = tuple[int, int, int] | str
"""An RGB colour, or ``AUTO`` for the rule of this module."""

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_CHUNK = 1 << 20  # pixels summed at once: bounds the copies made of a huge image


def parse_background(text: str) -> Background:
    """``auto`` or any colour Pillow knows (``white``, ``#202020``, ``rgb(9,9,9)``) as a
    ``Background``; ``ValueError`` naming the text when it is neither."""
    if text.strip().lower() == AUTO:
        return AUTO
    from PIL import ImageColor

    try:
        return tuple(ImageColor.getrgb(text)[:3])  # type: ignore[return-value]
    except ValueError:
        raise ValueError(f"unknown colour {text!r} (give auto, white, black or #rrggbb)") from None


def has_alpha(image: PILImage) -> bool:
    """Whether the image carries transparency, as a channel or a palette/colour key."""
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def light_ink(rgba: PILImage) -> bool:
    """The ``auto`` rule's test on an RGBA image: is the alpha-weighted mean luminance
    of its pixels >= 0.5? Luminance is ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B) / 255,
    the mean is sum(alpha * luminance) / sum(alpha), so fully transparent pixels do not
    count and half-transparent ones (antialiased edges) count half. A fully transparent
    image has no ink: False (white). Summed in whole numbers (the weights in
    thousandths), so that the test is exact even at 0.5 and at any image size, and
    ``predict_image``'s graph, which sums the same way, decides alike."""
    pixels = np.frombuffer(rgba.tobytes(), np.uint8).reshape(-1, 4)
    weights = np.asarray(LUMINANCE_WEIGHTS, np.int64)
    ink = alpha_total = 0
    for start in range(0, len(pixels), _CHUNK):
        part = pixels[start : start + _CHUNK].astype(np.int64)
        ink += int(part[:, 3] @ (part[:, :3] @ weights))
        alpha_total += int(part[:, 3].sum())
    return alpha_total > 0 and ink >= LIGHT_INK_LUMINANCE * int(weights.sum()) * 255 * alpha_total


def resolve(rgba: PILImage, background: Background) -> tuple[int, int, int]:
    """The colour ``rgba`` is flattened onto: ``background`` itself, or for ``AUTO``
    black when its ink is light (``light_ink``), else white."""
    if background != AUTO:
        return background  # type: ignore[return-value]
    return BLACK if light_ink(rgba) else WHITE


def flatten(image: PILImage, background: Background = AUTO) -> PILImage:
    """Any image -> RGB, with transparent pixels composited onto ``background``
    (a colour, or ``AUTO`` for the rule in this module's docstring)."""
    from PIL import Image

    if not has_alpha(image):
        return image if image.mode == "RGB" else image.convert("RGB")
    rgba = image.convert("RGBA")
    if rgba.getchannel("A").getextrema()[0] == 255:  # nothing transparent after all
        return rgba.convert("RGB")
    flat = Image.new("RGBA", rgba.size, (*resolve(rgba, background), 255))
    flat.alpha_composite(rgba)
    return flat.convert("RGB")

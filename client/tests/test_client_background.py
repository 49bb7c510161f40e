"""The background behind transparent pixels: ``auto`` (black behind light ink, white
behind dark ink, by the alpha-weighted mean luminance), or a colour of the user's."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dann_client.background import AUTO, BLACK, WHITE, light_ink, parse_background
from dann_client.cli import cli
from dann_client.preprocessing import load_image


def stroke(ink: tuple[int, int, int], alpha: int = 255, size: int = 40) -> Image.Image:
    """A bar of ``ink`` on a fully transparent (alpha 0) background of another colour."""
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[..., :3] = (90, 200, 40)  # the colour of transparent pixels must not matter
    pixels[10:30, 18:22] = (*ink, alpha)
    return Image.fromarray(pixels, "RGBA")


def rgba(*pixels: tuple[int, int, int, int]) -> Image.Image:
    return Image.fromarray(np.array([pixels], np.uint8), "RGBA")


@pytest.mark.parametrize(
    ("ink", "background"),
    [((255, 255, 255), BLACK), ((250, 240, 200), BLACK), ((0, 0, 0), WHITE), ((20, 0, 90), WHITE)],
)
def test_auto_puts_light_ink_on_black_and_dark_ink_on_white(tmp_path, ink, background):
    stroke(ink).save(tmp_path / "digit.png")
    seen = load_image(tmp_path / "digit.png")  # auto is the default
    assert tuple(seen[2, 2]) == background  # the transparent corner
    assert abs(int(seen[16, 16].mean()) - int(np.mean(ink))) <= 2  # the stroke itself
    np.testing.assert_array_equal(seen, load_image(tmp_path / "digit.png", background=AUTO))


def test_a_colour_of_the_users_choice_wins(tmp_path):
    stroke((255, 255, 255)).save(tmp_path / "digit.png")
    assert tuple(load_image(tmp_path / "digit.png", background=WHITE)[2, 2]) == WHITE
    red = parse_background("#ff0000")
    assert tuple(load_image(tmp_path / "digit.png", background=red)[2, 2]) == (255, 0, 0)


def test_the_rule_weighs_luminance_by_alpha():
    # Equal weight on white and black: a mean of exactly 0.5 is light ink.
    assert light_ink(rgba((255, 255, 255, 255), (0, 0, 0, 255)))
    assert not light_ink(rgba((254, 254, 254, 255), (0, 0, 0, 255)))
    # A faint black pixel counts for little against an opaque white one, and the other
    # way round; a fully transparent pixel not at all, whatever its colour.
    assert light_ink(rgba((255, 255, 255, 255), (0, 0, 0, 60), (0, 0, 0, 0)))
    assert not light_ink(rgba((255, 255, 255, 60), (0, 0, 0, 255), (255, 255, 255, 0)))
    # Luminance weights green most: pure green is light, pure blue is dark.
    assert light_ink(rgba((0, 255, 0, 255))) and not light_ink(rgba((0, 0, 255, 255)))
    assert not light_ink(rgba((255, 255, 255, 0)))  # nothing visible: white


def test_fully_transparent_images_go_onto_white(tmp_path):
    Image.new("RGBA", (40, 40), (255, 255, 255, 0)).save(tmp_path / "empty.png")
    assert load_image(tmp_path / "empty.png").min() == 255


def test_opaque_images_with_an_alpha_channel_are_unchanged(tmp_path):
    pixels = np.random.default_rng(4).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    Image.fromarray(pixels, "RGBA").save(tmp_path / "opaque.png")
    for background in (AUTO, WHITE, BLACK):
        seen = load_image(tmp_path / "opaque.png", background=background)
        np.testing.assert_array_equal(seen, pixels[..., :3])


def test_grey_alpha_and_palette_transparency_follow_the_rule(tmp_path):
    stroke((255, 255, 255)).convert("LA").save(tmp_path / "grey.png")
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 254 * 3)
    palette.paste(1, (18, 10, 22, 30))  # white bar; index 0 (black) is transparent
    palette.save(tmp_path / "palette.png", transparency=0)
    for name in ("grey.png", "palette.png"):
        seen = load_image(tmp_path / name)
        assert tuple(seen[2, 2]) == BLACK and seen[16, 16].min() > 240, name


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("auto", AUTO), (" AUTO ", AUTO), ("white", WHITE), ("#202020", (32, 32, 32))],
)
def test_parse_background(text, parsed):
    assert parse_background(text) == parsed


def test_an_unknown_colour_is_a_usage_error_naming_it(tmp_path):
    stroke((0, 0, 0)).save(tmp_path / "digit.png")
    for command in (["preprocess", str(tmp_path / "digit.png"), "-o", str(tmp_path / "o.png")],):
        result = CliRunner().invoke(cli, [*command, "--background", "chartreuse-ish"])
        assert result.exit_code == 2
        assert "unknown colour 'chartreuse-ish'" in result.stderr


def test_preprocess_shows_the_auto_background(tmp_path):
    stroke((255, 255, 255)).save(tmp_path / "digit.png")
    out = tmp_path / "seen.png"
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["preprocess", str(tmp_path / "digit.png"), "-o", str(out)]).exit_code
        == 0
    )
    assert Image.open(out).getpixel((1, 1)) == BLACK
    args = ["preprocess", str(tmp_path / "digit.png"), "-o", str(out), "--background", "white"]
    assert runner.invoke(cli, args).exit_code == 0
    assert Image.open(out).getpixel((1, 1)) == WHITE

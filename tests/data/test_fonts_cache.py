"""The rendered ``fonts`` splits are kept in the cache folder: a later run reads the
very arrays instead of rendering for seconds, and a damaged, foreign or unwritable
cache costs a rendering, never wrong images or the run."""

from __future__ import annotations

import numpy as np
import pytest
from support.cache_damage import DAMAGE, rewritten

from dann_serve.data import cache_files, fonts

COUNT, SEED = 24, 5
RENDER = fonts.generate  # the renderer itself, whatever a test puts in its place


@pytest.fixture()
def renders(monkeypatch: pytest.MonkeyPatch, cache_dir) -> list[tuple[int, int]]:
    """The ``(count, seed)`` of every rendering, in the test's own cache folder."""
    seen: list[tuple[int, int]] = []

    def counted(count: int, seed: int, progress: bool = False):
        seen.append((count, seed))
        return RENDER(count, seed, progress)

    monkeypatch.setattr(fonts, "generate", counted)
    return seen


def _same(a, b) -> bool:
    return np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)


def _cache_file(cache_dir):
    return cache_dir / f"fonts-{SEED}-{COUNT}.npz"


def test_a_second_run_reads_the_rendered_images_back(renders):
    first = fonts.rendered(COUNT, SEED)
    again = fonts.rendered(COUNT, SEED)
    assert renders == [(COUNT, SEED)]  # rendered once
    assert _same(again, first) and _same(first, RENDER(COUNT, SEED))
    assert again.labels.dtype == np.int64


def test_another_count_or_seed_is_rendered_for_itself(renders):
    fonts.rendered(COUNT, SEED)
    fonts.rendered(COUNT, SEED + 1)
    fonts.rendered(COUNT + 1, SEED)
    assert renders == [(COUNT, SEED), (COUNT, SEED + 1), (COUNT + 1, SEED)]


def test_a_new_renderer_renders_again_over_the_old_images(renders, cache_dir, monkeypatch, capsys):
    fonts.rendered(COUNT, SEED)
    monkeypatch.setattr(fonts, "renderer_version", lambda: "another renderer")
    fonts.rendered(COUNT, SEED)
    assert len(renders) == 2 and "fonts cache out of date" in capsys.readouterr().err
    fonts.rendered(COUNT, SEED)
    assert len(renders) == 2  # the new renderer's images are the ones kept
    assert [path.name for path in cache_dir.iterdir()] == [_cache_file(cache_dir).name]


def test_the_renderer_version_follows_the_font_files(tmp_path, monkeypatch):
    copies = []
    for index, path in enumerate(fonts._font_files()[:2]):
        copies.append(tmp_path / f"{index}.ttf")
        copies[-1].write_bytes(path.read_bytes())
    monkeypatch.setattr(fonts, "_font_files", lambda: copies)
    before = fonts.renderer_version.__wrapped__()
    copies[1].write_bytes(copies[1].read_bytes() + b"\0")  # a font upgraded in place
    assert fonts.renderer_version.__wrapped__() != before


def _labels_no_digits(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**arrays, "labels": arrays["labels"] + 10}


BROKEN = {
    **DAMAGE,
    "checksum matches, labels no digits": lambda path: rewritten(
        path, _labels_no_digits, checksum_kept=False
    ),
}


@pytest.mark.parametrize("damage", BROKEN)
def test_a_broken_cache_is_rendered_again_and_mended(renders, cache_dir, capsys, damage):
    first = fonts.rendered(COUNT, SEED)
    BROKEN[damage](_cache_file(cache_dir))
    again = fonts.rendered(COUNT, SEED)
    assert _same(again, first) and len(renders) == 2
    assert "broken fonts cache, rendering again" in capsys.readouterr().err
    assert _same(fonts.rendered(COUNT, SEED), first) and len(renders) == 2  # mended


def test_a_cache_folder_that_cannot_be_written_only_costs_time(
    renders, tmp_path, monkeypatch, capsys
):
    blocked = tmp_path / "a file"
    blocked.write_text("where the cache folder should be")
    monkeypatch.setenv(cache_files.CACHE_DIR_VARIABLE, str(blocked))
    split = fonts.rendered(COUNT, SEED)
    assert _same(split, RENDER(COUNT, SEED))
    assert "cannot write the fonts cache" in capsys.readouterr().err

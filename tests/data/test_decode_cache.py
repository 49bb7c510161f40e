"""The decode cache of image folders: a second read decodes nothing and gives the same
images, a changed file costs only itself, a corrupt cache is rebuilt and never trusted,
and the key follows the folder and every rule that changes what a file decodes to."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cache_damage import DAMAGE, rewritten
from support.image_folders import (
    break_file,
    labelled_folder,
    unlabelled_folder,
    write_png,
)

from dann_client import preprocessing
from dann_serve.data import cache_files, decode_cache
from dann_serve.data.cache_files import default_cache_dir
from dann_serve.data.decode_cache import DecodeCache
from dann_serve.data.folders import read_folder

# Each test decodes into a cache of its own (the ``cache_dir`` fixture), never ~/.cache.
pytestmark = pytest.mark.usefixtures("cache_dir")

# -- the decode cache ---------------------------------------------------------------------


def test_a_second_read_decodes_nothing_and_gives_the_same_images(
    digits, tmp_path: Path, decodes: list[Path], cache_dir: Path
) -> None:
    source = labelled_folder(tmp_path / "source", digits, per_class=3)
    first = read_folder(source)
    assert len(decodes) == 30
    (cache_file,) = cache_dir.glob("*.npz")
    assert cache_file == DecodeCache(source).path
    written = cache_file.stat().st_mtime_ns
    decodes.clear()
    second = read_folder(source)
    assert decodes == []
    assert cache_file.stat().st_mtime_ns == written  # a hit rewrites nothing
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.files == second.files


def test_a_changed_added_or_removed_file_costs_only_itself(
    digits, tmp_path: Path, decodes: list[Path]
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=9)
    before = read_folder(target)
    changed = target / "camera" / "img0601.png"

    # Other pixels, the same size: the modification time tells.
    decodes.clear()
    replacement = 255 - np.asarray(Image.open(changed))
    write_png(changed, replacement)
    info = changed.stat()
    os.utime(changed, ns=(info.st_atime_ns, info.st_mtime_ns + 2_000_000_000))
    after = read_folder(target)
    assert decodes == [changed]
    row = after.files.index(str(changed.relative_to(target)))
    np.testing.assert_array_equal(after.images[row], preprocessing.load_image(changed))
    assert not np.array_equal(after.images[row], before.images[row])
    others = [i for i in range(len(after.files)) if i != row]
    np.testing.assert_array_equal(after.images[others], before.images[others])

    # A new file is decoded alone; a removed one is dropped without decoding anything.
    decodes.clear()
    added = write_png(target / "new.png", digits[0][0])
    assert len(read_folder(target).files) == 10 and decodes == [added]
    decodes.clear()
    (target / "img0600.png").unlink()
    now = read_folder(target)
    assert len(now.files) == 9 and "img0600.png" not in now.files and decodes == []
    assert read_folder(target).files == now.files and decodes == []


def test_an_unreadable_file_is_tried_again_without_rewriting_the_cache(
    digits, tmp_path: Path, decodes: list[Path], cache_dir: Path
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=5)
    bad = break_file(target / "bad.png", "garbage")
    first = read_folder(target, skip_unreadable=True)
    written = DecodeCache(target).path.stat().st_mtime_ns
    decodes.clear()
    second = read_folder(target, skip_unreadable=True)
    assert decodes == [bad]  # never cached: a file fixed later is read then
    assert second.skipped == first.skipped == [str(bad)]
    assert DecodeCache(target).path.stat().st_mtime_ns == written
    np.testing.assert_array_equal(second.images, first.images)

    decodes.clear()
    write_png(bad, digits[0][1])  # fixed
    assert len(read_folder(target).files) == 6 and decodes == [bad]


def _other_index(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An index claiming other files."""
    index = json.loads(arrays["index"].tobytes())
    index = [[f"x{name}", size, mtime] for name, size, mtime in index]
    return {**arrays, "index": np.frombuffer(json.dumps(index).encode(), np.uint8)}


def _float_images(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**arrays, "images": arrays["images"].astype(np.float32)}


CORRUPTIONS = {
    **DAMAGE,
    "index changed": lambda path: rewritten(path, _other_index, checksum_kept=True),
    "checksum matches, wrong dtype": lambda path: rewritten(
        path, _float_images, checksum_kept=False
    ),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_cache_is_rebuilt_never_trusted(
    corruption: str, digits, tmp_path: Path, decodes: list[Path], capsys
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=6)
    expected = read_folder(target)
    cache_file = DecodeCache(target).path
    CORRUPTIONS[corruption](cache_file)
    decodes.clear()
    capsys.readouterr()
    found = read_folder(target)
    assert len(decodes) == 6  # every file decoded again
    np.testing.assert_array_equal(found.images, expected.images)
    assert found.files == expected.files
    assert f"{cache_file}: broken decode cache, decoding again (" in capsys.readouterr().err
    decodes.clear()
    read_folder(target)  # rebuilt: a hit again
    assert decodes == []
    assert capsys.readouterr().err == ""


def test_the_cache_is_keyed_by_folder_and_preprocessing_version(
    digits, tmp_path: Path, decodes: list[Path], monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    target = unlabelled_folder(tmp_path / "target", digits, count=6)
    read_folder(target)
    decodes.clear()
    moved = target.rename(tmp_path / "moved")
    read_folder(moved)
    assert len(decodes) == 6
    decodes.clear()
    monkeypatch.setattr(decode_cache, "preprocessing_version", lambda: "another version")
    read_folder(moved)
    assert len(decodes) == 6
    assert len(list(cache_dir.glob("*.npz"))) == 3


def test_the_cache_lives_under_dann_cache_dir_else_the_xdg_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    assert default_cache_dir() == cache_dir
    monkeypatch.delenv(cache_files.CACHE_DIR_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dann-serve" / "decoded"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "dann-serve" / "decoded"


def test_the_preprocessing_version_follows_the_transparency_rule(monkeypatch, tmp_path) -> None:
    """Editing the transparency rule (background.py) changes what a folder decodes to,
    so it must change the cache key as an edit of preprocessing.py does."""
    from dann_client import background

    before = decode_cache.preprocessing_version()
    decode_cache.preprocessing_version.cache_clear()
    edited = tmp_path / "background.py"
    edited.write_bytes(Path(background.__file__).read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(background, "__file__", str(edited))
    try:
        assert decode_cache.preprocessing_version() != before
    finally:
        decode_cache.preprocessing_version.cache_clear()

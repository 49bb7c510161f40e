"""A cache file that several writers fill at once (every worker of a distributed run
renders ``fonts`` or decodes the same folder) ends whole, and no writer fails."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dann_serve.data.cache_files import read_arrays, write_arrays


def _accept(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Any arrays that pass the checksum, as they are."""
    return arrays


def test_writers_racing_for_one_cache_file_leave_it_whole(tmp_path, capsys):
    path = tmp_path / "cache" / "shared.npz"
    payloads = [
        {"images": np.full((4_000_000,), writer, np.uint8)} for writer in range(4)
    ]  # 4 MB each: long enough writes for the writers to overlap
    for _ in range(5):
        writers = [
            threading.Thread(target=write_arrays, args=(path, arrays, "test cache"))
            for arrays in payloads
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        stored = read_arrays(path, "test cache", "making it again", _accept)
        assert stored is not None
        assert any(np.array_equal(stored["images"], p["images"]) for p in payloads)
    assert capsys.readouterr().err == ""  # no writer failed, no file was found broken
    assert [p.name for p in path.parent.iterdir()] == ["shared.npz"]  # no temporary left


@pytest.mark.usefixtures("homeless")
def test_without_a_home_directory_nothing_is_kept_and_nothing_fails(tmp_path):
    from PIL import Image

    from dann_serve.data import cache_files, fonts
    from dann_serve.data.decode_cache import DecodeCache

    assert cache_files.default_cache_dir() is None
    assert len(fonts.rendered(12, seed=3).images) == 12
    Image.new("RGB", (32, 32), "white").save(tmp_path / "a.png")
    assert DecodeCache(tmp_path).decode(["a.png"]).images.shape == (1, 32, 32, 3)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.png"]

"""Fixtures of the folder tests: real digit images, and each test's own decode cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dann_client import preprocessing
from dann_serve.data import decode_cache, load_domain


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Grey 28x28 uint8 digits and their labels: the ``digits`` data set's training
    images without the 2-pixel black frame its MNIST layout adds."""
    domain = load_domain("digits")
    return domain.train.images[:, 2:30, 2:30, 0].copy(), domain.train.labels


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own decode cache (never ~/.cache)."""
    path = tmp_path / "decode-cache"
    monkeypatch.setenv(decode_cache.CACHE_DIR_VARIABLE, str(path))
    return path


@pytest.fixture()
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the client's ``load_image`` is asked to decode, in order."""
    seen: list[Path] = []
    original = preprocessing.load_image

    def counting(path, **options):
        seen.append(Path(path))
        return original(path, **options)

    monkeypatch.setattr(preprocessing, "load_image", counting)
    return seen

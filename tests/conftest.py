"""Shared fixtures: tiny real domains registered under their own names, so tests run
the real loaders, pipeline and training loop in seconds."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from dann_serve import datasets
from dann_serve.datasets import Domain, Split
from dann_serve.datasets.digits import load_digits
from dann_serve.datasets.fonts import generate


@pytest.fixture(scope="session")
def tiny_source() -> Domain:
    return Domain("tiny-fonts", train=generate(256, seed=10), test=generate(100, seed=11))


@pytest.fixture(scope="session")
def tiny_target() -> Domain:
    digits = load_digits()
    return Domain(
        "tiny-digits",
        train=Split(digits.train.images[:256], digits.train.labels[:256]),
        test=Split(digits.test.images[:100], digits.test.labels[:100]),
    )


@pytest.fixture()
def tiny_pair(monkeypatch, tiny_source: Domain, tiny_target: Domain) -> tuple[str, str]:
    """Registers the tiny domains as data sets and returns their names."""
    monkeypatch.setitem(datasets.LOADERS, tiny_source.name, lambda _dir: tiny_source)
    monkeypatch.setitem(datasets.LOADERS, tiny_target.name, lambda _dir: tiny_target)
    return tiny_source.name, tiny_target.name


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

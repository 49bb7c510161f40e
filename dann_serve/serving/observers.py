"""What else sees each answered prediction: the live monitor, the capture of served
images. The front ends know nothing of either.

An observer is called on the request path, after the answer is computed and before it
is sent, so it must only hand the request on (to a bounded queue of its own, dropping
and counting when that is full) and return: it may never block, raise or take long.
Observers are added once at start-up, before the front ends listen.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

log = logging.getLogger("dann_serve.serving")


@dataclass(frozen=True)
class Served:
    """One answered prediction, as the signature saw it."""

    model: str
    version: int
    signature: str  # the signature's key, as the SavedModel names it
    inputs: Mapping[str, np.ndarray]  # decoded: an image signature's encoded files as bytes
    outputs: Mapping[str, np.ndarray]


class Observer(Protocol):
    def observe(self, served: Served) -> None: ...


_OBSERVERS: list[Observer] = []


def add(observer: Observer) -> None:
    _OBSERVERS.append(observer)


def remove_all() -> None:
    """Forget every observer (a server stopped; tests)."""
    _OBSERVERS.clear()


def notify(served: Served) -> None:
    """Hand ``served`` to every observer; one that raises is logged and skipped, never
    the request's failure."""
    for observer in _OBSERVERS:
        try:
            observer.observe(served)
        except Exception:
            log.exception("observer %s failed; the request is answered all the same", observer)

"""The one input every part of the monitor reads: a model's softmax outputs.

A row is one image's probabilities over the digit classes, as ``predict_label``
answers them. Everything downstream (the reference, the window, the tests and the
estimate) assumes rows that are finite, in [0, 1] and sum to one; a row that is not
(a NaN from a broken input, logits passed by mistake) would silently bend every
statistic, so :func:`checked` refuses it once, at the door, naming the row.
"""

from __future__ import annotations

import numpy as np

from dann_client.contract import NUM_CLASSES

# float32 softmax rows sum to one within a few ulps; 1e-3 also admits outputs that went
# through float16 or a text round trip, and still refuses logits or unnormalised scores.
SUM_TOLERANCE = 1e-3


def checked(name: str, probabilities: object) -> np.ndarray:
    """``probabilities`` as a float32 ``(n, NUM_CLASSES)`` array, or a ValueError that
    names ``name`` and the first problem found (shape, non-finite rows, range, sums)."""
    try:
        array = np.asarray(probabilities, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: not an array of numbers") from None
    if array.ndim != 2 or array.shape[1] != NUM_CLASSES:
        raise ValueError(
            f"{name}: expected probabilities of shape (n, {NUM_CLASSES}), got {array.shape}"
        )
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise ValueError(f"{name}: NaN or infinity in {_rows(bad)}")
    bad = ((array < 0) | (array > 1)).any(axis=1)
    if bad.any():
        raise ValueError(f"{name}: values outside [0, 1] in {_rows(bad)}")
    bad = np.abs(array.sum(axis=1, dtype=np.float64) - 1.0) > SUM_TOLERANCE
    if bad.any():
        raise ValueError(f"{name}: a sum other than 1 in {_rows(bad)} (softmax rows expected)")
    return array


def _rows(mask: object) -> str:
    """The first few row numbers of ``mask``, for an error message that stays one line."""
    rows = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(str(row) for row in rows[:5])
    more = f" and {rows.size - 5} more" if rows.size > 5 else ""
    return f"row{'s' if rows.size > 1 else ''} {shown}{more}"


def confidence(probabilities: np.ndarray) -> np.ndarray:
    """Each row's largest probability: the model's own belief that its answer is right."""
    return probabilities.max(axis=1)


def negative_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Each row's negative entropy, sum p log p (0 for a one-hot row, -log K for a flat
    one): a confidence that reads the whole row, not only its top class, which Garg et
    al. found the better score for ATC. Computed in float64 with 0 log 0 taken as 0."""
    p = probabilities.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return terms.sum(axis=1)


def predicted(probabilities: np.ndarray) -> np.ndarray:
    """Each row's predicted class (the first of tied maxima, as ``predict_label``)."""
    return probabilities.argmax(axis=1)


def class_counts(probabilities: np.ndarray) -> np.ndarray:
    """How many rows predict each class, ``NUM_CLASSES`` integers."""
    return np.bincount(predicted(probabilities), minlength=NUM_CLASSES)


def class_shares(probabilities: np.ndarray) -> np.ndarray:
    """The share of rows predicting each class (zeros for no rows)."""
    counts = class_counts(probabilities).astype(np.float64)
    return counts / max(1, len(probabilities))

"""Synthetic softmax outputs of a digit classifier, for the monitor's statistical tests.

Each image gets a true class (from ``shares``), is answered right with probability
``accuracy`` (wrong answers land on ``wrong_classes``), and its logits are standard
normal noise plus a margin on the answered class: larger for right answers than for
wrong ones, as a trained model is more confident where it is right. Shifted streams
change one knob each: fewer right answers, another class mix, more confidence, or the
far shift of an adapted model, wrong yet as confident as when right and folding its
mistakes onto a few classes. Seeded: the same arguments give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

CLASSES = 10


@dataclass(frozen=True)
class Stream:
    """How one stream's images are answered (see the module's docstring)."""

    accuracy: float = 0.9
    margin_right: float = 7.0
    margin_wrong: float = 3.5
    spread: float = 1.5
    shares: tuple[float, ...] = (0.1,) * CLASSES
    wrong_classes: tuple[int, ...] = tuple(range(CLASSES))

    def draw(self, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` rows of float32 probabilities and their true labels."""
        rng = np.random.default_rng(seed)
        labels = rng.choice(CLASSES, size=count, p=self.shares)
        right = rng.random(count) < self.accuracy
        wrong = rng.choice(self.wrong_classes, size=count)
        wrong = np.where(wrong == labels, (wrong + 1) % CLASSES, wrong)
        answered = np.where(right, labels, wrong)
        margins = np.where(right, self.margin_right, self.margin_wrong)
        logits = rng.normal(size=(count, CLASSES))
        logits[np.arange(count), answered] += rng.normal(margins, self.spread)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities.astype(np.float32), labels


IN_DISTRIBUTION = Stream()
SHIFTED = {
    "fewer right answers": replace(IN_DISTRIBUTION, accuracy=0.75),
    "another class mix": replace(IN_DISTRIBUTION, shares=(0.19, 0.19) + (0.0775,) * 8),
    "more confident": replace(IN_DISTRIBUTION, accuracy=0.97, margin_right=8.5),
    "confidently wrong": replace(
        IN_DISTRIBUTION, accuracy=0.3, margin_wrong=7.0, wrong_classes=(1, 4, 7)
    ),
}

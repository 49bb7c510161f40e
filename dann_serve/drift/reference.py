"""What an export records for the monitor: the reference the served traffic is held to.

Two kinds of images feed it, each for its own question:

- a bounded, seeded sample of the *target* images the model was adapted to (at most
  :data:`MAX_TARGET_IMAGES`): the model's outputs on them are what in-distribution
  traffic looks like, so the drift test compares windows with them, and their
  predicted class shares are the baseline of the reliability rule;
- *held-out labelled source* images (the source's test split: images the model never
  trained on, since on its training images it is more confident and more often right
  than on any new image): the only labels adaptation has, so ATC's threshold is
  fitted on them, and their accuracy and mean confidence are recorded beside it.

Saved as JSON (:data:`REFERENCE_FILE`), versioned by :data:`FORMAT`: a server reads
only formats it knows. Probabilities are written with the fewest digits that give the
same float32 back, so the round trip is exact and the file about 40% smaller than
plain float64 text (some 280 KB for 2,000 images).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dann_client.contract import NUM_CLASSES
from dann_serve.drift import estimate
from dann_serve.drift.probabilities import checked, class_shares, confidence, predicted
from dann_serve.files import write_json

FORMAT = 1
REFERENCE_FILE = "monitor_reference.json"
# Where an export puts it inside a version, beside the warm-up records: TensorFlow
# Serving reads nothing of ``assets.extra/`` but its warm-up file.
VERSION_PATH = Path("assets.extra") / REFERENCE_FILE
# Enough rows for the KS tests to see a shift of a few points in any output's CDF and
# for class shares within about a point, small enough for a JSON file of a few hundred
# kilobytes and a test that runs in milliseconds.
MAX_TARGET_IMAGES = 2000


@dataclass(frozen=True, eq=False)
class Reference:
    """The model's outputs on the target sample, and ATC's fit on the source images.

    ``probabilities`` is read-only; ``threshold`` applies to the ATC score ``score``;
    ``source_*`` describe the held-out source images it was fitted on; ``seed`` drew
    the target sample.
    """

    probabilities: np.ndarray
    score: str
    threshold: float
    source_images: int
    source_accuracy: float
    source_mean_confidence: float
    seed: int

    def __post_init__(self) -> None:
        rows = checked("reference probabilities", self.probabilities)
        if len(rows) == 0:
            raise ValueError("reference probabilities: no rows (the target sample is empty)")
        rows.flags.writeable = False
        object.__setattr__(self, "probabilities", rows)
        estimate.check_score(self.score)
        if not np.isfinite(self.threshold):
            raise ValueError(f"reference threshold: must be finite, got {self.threshold}")
        if self.source_images < 1:
            raise ValueError(f"reference source images: at least 1, got {self.source_images}")
        for name in ("source_accuracy", "source_mean_confidence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"reference {name}: must be in [0, 1], got {getattr(self, name)}")

    @property
    def class_shares(self) -> np.ndarray:
        """The predicted class shares on the target sample (derived, never stored apart)."""
        return class_shares(self.probabilities)

    @property
    def source_gap(self) -> float:
        """Mean confidence minus accuracy on the source images: the model's own
        overconfidence where labels are known, the baseline of the reliability rule."""
        return self.source_mean_confidence - self.source_accuracy

    @property
    def source_errors(self) -> int:
        """How many held-out source images the model got wrong: what ATC's threshold
        was fitted on (derived, never stored apart)."""
        return round(self.source_images * (1 - self.source_accuracy))

    def to_json(self) -> dict:
        """The file's content. ``target.class_shares`` is there for readers of the file;
        :meth:`from_json` derives it again from the probabilities."""
        return {
            "format": FORMAT,
            "target": {
                "images": len(self.probabilities),
                "seed": self.seed,
                "class_shares": [float(share) for share in self.class_shares],
                "probabilities": [
                    [float(str(value)) for value in row] for row in self.probabilities
                ],
            },
            "source": {
                "images": self.source_images,
                "accuracy": self.source_accuracy,
                "mean_confidence": self.source_mean_confidence,
            },
            "atc": {"score": self.score, "threshold": self.threshold},
        }

    @classmethod
    def from_json(cls, payload: dict) -> Reference:
        """The reference a :meth:`to_json` payload describes; a ValueError names the
        first key that is missing or wrong, and a format this version cannot read."""
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise ValueError(f"monitor reference: format {found!r} unsupported (reads {FORMAT})")
        try:
            target, source, atc = payload["target"], payload["source"], payload["atc"]
            probabilities = np.asarray(target["probabilities"], dtype=np.float32)
            if len(probabilities) != target["images"]:
                raise ValueError(
                    f"monitor reference: target.images is {target['images']}, "
                    f"but {len(probabilities)} rows of probabilities follow"
                )
            return cls(
                probabilities=probabilities,
                score=str(atc["score"]),
                threshold=float(atc["threshold"]),
                source_images=int(source["images"]),
                source_accuracy=float(source["accuracy"]),
                source_mean_confidence=float(source["mean_confidence"]),
                seed=int(target["seed"]),
            )
        except KeyError as missing:
            raise ValueError(f"monitor reference: missing key {missing}") from None
        except (TypeError, AttributeError) as wrong:
            raise ValueError(f"monitor reference: malformed ({wrong})") from None


def sample_indices(count: int, max_images: int = MAX_TARGET_IMAGES, seed: int = 0) -> np.ndarray:
    """Which of ``count`` target images the reference keeps: all of them up to
    ``max_images``, else a seeded sample without replacement, in increasing order (an
    export may run the model on these images only)."""
    if count <= max_images:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=max_images, replace=False))


def build_reference(
    target_probabilities: np.ndarray,
    source_probabilities: np.ndarray,
    source_labels: np.ndarray,
    *,
    max_images: int = MAX_TARGET_IMAGES,
    seed: int = 0,
    score: str = estimate.DEFAULT_SCORE,
) -> Reference:
    """The reference of a model from its outputs on target images (all of them, or the
    rows :func:`sample_indices` picked: the sample is the same either way) and on
    held-out labelled source images with their labels."""
    if max_images < 1:
        raise ValueError(f"reference: max_images must be at least 1, got {max_images}")
    target = checked("target probabilities", target_probabilities)
    target = target[sample_indices(len(target), max_images, seed)]
    source = checked("source probabilities", source_probabilities)
    labels = np.asarray(source_labels)
    if labels.shape != (len(source),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"source labels: expected {len(source)} integer labels, one per source row, "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if len(source) == 0:
        raise ValueError("source probabilities: no rows (ATC needs labelled source images)")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"source labels: must be in 0..{NUM_CLASSES - 1}")
    correct = predicted(source) == labels
    return Reference(
        probabilities=target,
        score=score,
        threshold=estimate.fit_threshold(estimate.scores(source, score), correct),
        source_images=len(source),
        source_accuracy=float(correct.mean()),
        source_mean_confidence=float(confidence(source).astype(np.float64).mean()),
        seed=seed,
    )


def save(reference: Reference, path: Path) -> None:
    """Write ``reference`` to ``path`` as JSON, replacing any file there in one step."""
    write_json(path, reference.to_json())


def load(path: Path) -> Reference:
    """The reference saved at ``path``; a ValueError names the file and the problem."""
    try:
        return Reference.from_json(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None

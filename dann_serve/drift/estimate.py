"""The accuracy estimate without labels, and the rule that says when not to trust it.

The estimate is ATC, Average Thresholded Confidence (Garg et al., ICLR 2022): on
held-out *labelled source* images, fit the threshold ``t`` on a confidence score such
that the share of images scoring above ``t`` equals the model's accuracy there; on the
served images, the share scoring above ``t`` is the estimated accuracy. It holds
while the link between confidence and correctness stays what it was on the source, and
that is exactly what adaptation breaks: information maximisation and adversarial
alignment make an adapted model confident on the target, right or wrong. Measured on
two of our DANN models, ATC said 80% on a stream they got 71% right and 71% on one they
got 23% right. So every estimate comes with :meth:`ReliabilityRule.reasons`, the
explicit, measurable grounds on which it is declared untrustworthy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dann_serve.drift.probabilities import confidence, negative_entropy

# The confidence scores ATC may threshold; the reference records which one it used.
# Negative entropy is the default: Garg et al. found it the more accurate of the two.
SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "negative_entropy": negative_entropy,
    "max_confidence": confidence,
}
DEFAULT_SCORE = "negative_entropy"


def check_score(score: str) -> None:
    """Refuse an ATC score this version does not know, naming the ones it does."""
    if score not in SCORES:
        raise ValueError(f"ATC score: {score!r} is not one of {', '.join(SCORES)}")


def scores(probabilities: np.ndarray, score: str) -> np.ndarray:
    """The ATC score ``score`` of every row, as float64 (one type for fit and use)."""
    check_score(score)
    return SCORES[score](probabilities).astype(np.float64)


def fit_threshold(source_scores: np.ndarray, correct: np.ndarray) -> float:
    """The threshold ``t`` whose share of ``source_scores`` strictly above it equals the
    share of ``correct`` images: exactly when the scores are distinct (with ties at
    ``t`` the share above falls short). With ``k`` of ``n`` correct, ``t`` is the
    ``k+1``-th largest score, so the ``k`` largest lie above it; with all correct, ``t``
    is the next float below the smallest score, so that every image counts."""
    if len(source_scores) == 0 or len(source_scores) != len(correct):
        raise ValueError(
            f"ATC: need one correctness flag per source score, "
            f"got {len(source_scores)} scores and {len(correct)} flags"
        )
    ordered = np.sort(np.asarray(source_scores, dtype=np.float64))[::-1]
    right = int(np.count_nonzero(correct))
    if right == len(ordered):
        return float(np.nextafter(ordered[-1], -np.inf))
    return float(ordered[right])


def estimate_accuracy(probabilities: np.ndarray, score: str, threshold: float) -> float | None:
    """The share of rows whose ``score`` lies strictly above ``threshold`` (ATC's
    estimate), or None for no rows: an empty window has no accuracy to estimate."""
    if len(probabilities) == 0:
        return None
    return float(np.mean(scores(probabilities, score) > threshold))


# Why an estimate is not to be trusted; each a value of the monitor's JSON, so that a
# measurement of the rule can count which ground fired on which stream.
TOO_FEW_IMAGES = "too_few_images"
CONFIDENCE_DISAGREES = "confidence_disagrees"
CLASS_SHARES_MOVED = "class_shares_moved"
MODELS_DISAGREE = "models_disagree"
# The version was exported without a reference (its data could not be read then): no
# threshold to estimate with and nothing to test drift against.
NO_REFERENCE = "no_reference"
FEW_SOURCE_ERRORS = "few_source_errors"
# Every ground, in the order the rule reports them (NO_REFERENCE stands alone).
REASONS = (
    TOO_FEW_IMAGES,
    FEW_SOURCE_ERRORS,
    CONFIDENCE_DISAGREES,
    CLASS_SHARES_MOVED,
    MODELS_DISAGREE,
    NO_REFERENCE,
)


@dataclass(frozen=True)
class Evidence:
    """What the rule reads about a window, all label-free.

    ``calibration_gap``: mean confidence minus the estimate on the window;
    ``source_gap``: mean confidence minus accuracy on the held-out source images;
    ``source_errors``: how many of those images the model got wrong;
    ``share_shift``: total variation between the window's predicted class shares and
    the reference's; ``agreement``: the share of the window's images on which a second
    model (another candidate or head the export carries) predicts the same class, or
    None where there is none.
    """

    images: int
    estimate: float
    calibration_gap: float
    source_gap: float
    share_shift: float
    source_errors: int
    agreement: float | None = None


@dataclass(frozen=True)
class ReliabilityRule:
    """When an ATC estimate is declared unreliable; conservative by design, since a
    monitor that reports 71% on a stream it gets 23% right is worse than none.

    The drift verdict is not one of the grounds: it says the traffic moved, not that
    ATC went wrong. On a 300-step usps -> mnist-texture model, ATC was 17 points off
    on the very images the model was adapted to, which the drift test rightly found
    unshifted, and within 3.4 points on four streams it rightly found shifted.

    - ``min_images``: below it the estimate is noise (its standard error at 500 images
      is 1 to 2.2 points) and so are the gap and the class shares the next grounds read.
    - ``min_source_errors``: ATC's threshold is where the source's errors begin, so it is
      only as good as the errors it was fitted on. A model nearly perfect on its source
      (fonts -> digits: 7 wrong of 2,000) leaves the threshold in the far tail of its
      scores, and then confidence and ATC fail together: on MNIST, rotated, thickened
      or tight-cropped digits that model's estimate was 12 to 33 points too high while
      the gap below stayed within 2 points of the source's. With ``k`` errors the error
      rate itself is known to about 1/sqrt(k) of its size; 30 errors make that 18%.
      The usps models measured here had 56 to 102.
    - ``max_gap_change``: mean confidence is a second estimator of accuracy, exact for a
      calibrated model; ATC does not assume calibration, only that the source's link
      between score and correctness holds. Under that assumption the window's gap
      between the two stays near the source's (the same per-score calibration errors,
      reweighted); a gap that moved further than this means the link broke, and then
      both estimators are off. Measured: on two adapted models, gaps of 15 and 22
      points where ATC was 9 and 48 points wrong, under 3 where it was right; on a
      300-step usps -> mnist-texture model, the gap moved under 1.5 points on the four
      streams where ATC was within 3.4 points of the truth, 8 to 14 points on the three
      where it was 9 to 25 points off. Its source-only twin moved 2.8 on a stream (the
      scikit-learn digits) where ATC was 12.7 points off, 0.5 to 2.7 where it was within
      2.7: hence 0.025, about two standard errors of the gap's sampling noise at 500
      images of a model 90% right.
    - ``max_share_shift``: a model folding new inputs onto a few classes, as confidently
      wrong adapted models do, can stay as confident as ever, and then the gap above
      does not move; the predicted class shares (their total variation from the
      reference's) do. They also move with label shift and with the reference's own
      errors: on the 300-step model, streams it got 90 to 96% right sat 0.14 to 0.18
      from the reference. So the bound is 0.25, a quarter of the images answered as
      another class, past both and far past sampling noise (500 images against the
      2,000 of the reference: 0.06 on average, under 0.11 in 99 windows of 100).
    - ``max_disagreement``: where a second model's answers are known, their agreement
      is a second accuracy estimate (Jiang et al., ICLR 2022) that fails differently;
      the two must agree within this bound.
    """

    min_images: int = 500
    min_source_errors: int = 30
    max_gap_change: float = 0.025
    max_share_shift: float = 0.25
    max_disagreement: float = 0.05

    def reasons(self, evidence: Evidence) -> tuple[str, ...]:
        """The grounds on which the estimate is unreliable; empty: it may be trusted."""
        found = []
        if evidence.images < self.min_images:
            found.append(TOO_FEW_IMAGES)
        if evidence.source_errors < self.min_source_errors:
            found.append(FEW_SOURCE_ERRORS)
        if abs(evidence.calibration_gap - evidence.source_gap) > self.max_gap_change:
            found.append(CONFIDENCE_DISAGREES)
        if evidence.share_shift > self.max_share_shift:
            found.append(CLASS_SHARES_MOVED)
        if (
            evidence.agreement is not None
            and abs(evidence.agreement - evidence.estimate) > self.max_disagreement
        ):
            found.append(MODELS_DISAGREE)
        return tuple(found)


def total_variation(shares: np.ndarray, others: np.ndarray) -> float:
    """Half the L1 distance between two class-share vectors: the largest share of
    images that would have to change class to turn one into the other."""
    return float(0.5 * np.abs(np.asarray(shares) - np.asarray(others)).sum())

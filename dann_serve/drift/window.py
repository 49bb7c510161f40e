"""The last images a model version answered, and what they say about it.

A :class:`Window` keeps the probabilities of the last ``capacity`` images in a fixed
ring buffer (memory bounded whatever the traffic: 41 bytes an image) and hands out a
:class:`Snapshot` with the figures the monitor reports. Adding copies rows under a
lock and computes nothing; a snapshot copies the rows under the same lock and does its
arithmetic outside it, so a server can add from its request threads and snapshot from
one worker of its own without either waiting on the tests.

A window is a sample of traffic, so overlapping windows (one snapshot per batch) share
most of their images and their verdicts: a false alarm on one lasts until its images
have left. The false-alarm rate the drift test guarantees is per window, the chance
that a window of in-distribution traffic is flagged; it is measured on disjoint
windows, whose verdicts are independent given the reference.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from dann_client.contract import NUM_CLASSES
from dann_serve.drift import estimate, shift
from dann_serve.drift.probabilities import checked, class_shares, confidence, predicted
from dann_serve.drift.reference import Reference

# The contract's default: enough images for the tests and the estimate to settle
# (class shares within about 1.5 points, the estimate's standard error under 1.6).
CAPACITY = 1000


@dataclass(frozen=True)
class Snapshot:
    """The monitor's figures for one window. ``mean_confidence`` is None for an empty
    window; ``unreliable_because`` lists the rule's grounds (empty when the estimate
    is reliable); ``agreement`` is set only where a second model's answers are known;
    ``drift`` is None without a reference (nothing to test against); ``evidence`` is
    what the reliability rule read, None where it had nothing to read (no reference, no
    rows). Not part of the JSON: it is for whoever measures the rule."""

    images: int
    mean_confidence: float | None
    class_shares: tuple[float, ...]
    estimated_accuracy: float | None
    estimate_reliable: bool
    unreliable_because: tuple[str, ...]
    agreement: float | None
    drift: shift.ShiftTest | None
    evidence: estimate.Evidence | None = None

    def to_json(self) -> dict:
        """The contract's monitor object (its keys first), JSON-safe; without a
        reference the drift's p-value is null and the verdict false (no evidence)."""
        drift = self.drift.to_json() if self.drift else {"p_value": None, "shifted": False}
        return {
            "images": self.images,
            "mean_confidence": self.mean_confidence,
            "class_shares": list(self.class_shares),
            "estimated_accuracy": self.estimated_accuracy,
            "estimate_reliable": self.estimate_reliable,
            "drift": drift,
            "unreliable_because": list(self.unreliable_because),
            "agreement": self.agreement,
        }


class Window:
    """A sliding window over one model version's answers, held to ``reference`` (None
    for a version exported without one: the window then reports what needs no
    reference, images, confidence and class shares, and no estimate or drift test)."""

    def __init__(
        self,
        reference: Reference | None,
        capacity: int = CAPACITY,
        significance: float = shift.SIGNIFICANCE,
        rule: estimate.ReliabilityRule | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"monitor window: capacity must be at least 1, got {capacity}")
        shift.check_significance(significance)
        self.reference = reference
        self.capacity = capacity
        self.significance = significance
        self.rule = rule or estimate.ReliabilityRule()
        self._rows = np.zeros((capacity, NUM_CLASSES), dtype=np.float32)
        # per image: 1 if a second model predicted the same class, 0 if not, -1 unknown
        self._agrees = np.full(capacity, -1, dtype=np.int8)
        self._next = 0  # where the next row goes
        self._filled = 0
        self._lock = threading.Lock()

    def add(self, probabilities: np.ndarray, candidate: np.ndarray | None = None) -> None:
        """Append the rows of one answer (the oldest leave once the window is full).
        ``candidate``: a second model's probabilities for the same images, where the
        export carries one; it feeds the agreement check, never the figures."""
        rows = checked("served probabilities", probabilities)
        agrees = np.full(len(rows), -1, dtype=np.int8)
        if candidate is not None:
            other = checked("candidate probabilities", candidate)
            if other.shape != rows.shape:
                raise ValueError(
                    f"candidate probabilities: shape {other.shape} differs from "
                    f"the served probabilities' {rows.shape}"
                )
            agrees[:] = predicted(other) == predicted(rows)
        rows, agrees = rows[-self.capacity :], agrees[-self.capacity :]
        with self._lock:
            slots = (self._next + np.arange(len(rows))) % self.capacity
            self._rows[slots] = rows
            self._agrees[slots] = agrees
            self._next = (self._next + len(rows)) % self.capacity
            self._filled = min(self.capacity, self._filled + len(rows))

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the rows and agreement flags in the window, oldest first."""
        with self._lock:
            order = (self._next - self._filled + np.arange(self._filled)) % self.capacity
            return self._rows[order], self._agrees[order]

    def snapshot(self) -> Snapshot:
        """The window's figures now (tests and estimate computed outside the lock)."""
        rows, agrees = self.contents()
        return summarise(rows, agrees, self.reference, self.significance, self.rule)


def unreferenced(rows: np.ndarray) -> Snapshot:
    """The snapshot of a window without a reference: what the rows alone say."""
    listed = tuple(float(share) for share in class_shares(rows))
    mean_confidence = float(confidence(rows).astype(np.float64).mean()) if len(rows) else None
    reasons = (estimate.NO_REFERENCE,)
    return Snapshot(len(rows), mean_confidence, listed, None, False, reasons, None, None)


def summarise(
    rows: np.ndarray,
    agrees: np.ndarray,
    reference: Reference | None,
    significance: float,
    rule: estimate.ReliabilityRule,
) -> Snapshot:
    """The snapshot of a window holding ``rows`` (and ``agrees``, as :class:`Window`)."""
    if reference is None:
        return unreferenced(rows)
    drift = shift.detect(rows, reference.probabilities, significance)
    shares = class_shares(rows)
    listed = tuple(float(share) for share in shares)
    accuracy = estimate.estimate_accuracy(rows, reference.score, reference.threshold)
    if accuracy is None:  # no rows
        return Snapshot(0, None, listed, None, False, (estimate.TOO_FEW_IMAGES,), None, drift)
    mean_confidence = float(confidence(rows).astype(np.float64).mean())
    known = agrees[agrees >= 0]
    agreement = float(known.mean()) if len(known) >= rule.min_images else None
    evidence = estimate.Evidence(
        images=len(rows),
        estimate=accuracy,
        calibration_gap=mean_confidence - accuracy,
        source_gap=reference.source_gap,
        share_shift=estimate.total_variation(shares, reference.class_shares),
        source_errors=reference.source_errors,
        agreement=agreement,
    )
    reasons = rule.reasons(evidence)
    return Snapshot(
        images=len(rows),
        mean_confidence=mean_confidence,
        class_shares=listed,
        estimated_accuracy=accuracy,
        estimate_reliable=not reasons,
        unreliable_because=reasons,
        agreement=agreement,
        drift=drift,
        evidence=evidence,
    )

"""The reliability rule ground by ground, just inside and just past each bound."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dann_serve.drift import estimate
from dann_serve.drift.estimate import Evidence, ReliabilityRule

RULE = ReliabilityRule(
    min_images=500,
    min_source_errors=30,
    max_gap_change=0.04,
    max_share_shift=0.10,
    max_disagreement=0.05,
)
# 1,000 images, estimate 0.90, gaps 0.03 on both sides, no class move, 100 source
# errors, no second model
CALM = Evidence(
    images=1000,
    estimate=0.9,
    calibration_gap=0.03,
    source_gap=0.03,
    share_shift=0.0,
    source_errors=100,
)


def test_calm_evidence_is_reliable() -> None:
    assert RULE.reasons(CALM) == ()


@pytest.mark.parametrize(
    ("changes", "inside", "past", "reason"),
    [
        ("images", 500, 499, estimate.TOO_FEW_IMAGES),
        ("source_errors", 30, 29, estimate.FEW_SOURCE_ERRORS),
        ("calibration_gap", 0.0699, 0.0701, estimate.CONFIDENCE_DISAGREES),
        ("calibration_gap", -0.0099, -0.0101, estimate.CONFIDENCE_DISAGREES),
        ("share_shift", 0.10, 0.1001, estimate.CLASS_SHARES_MOVED),
        ("agreement", 0.8501, 0.8499, estimate.MODELS_DISAGREE),
        ("agreement", 0.9499, 0.9501, estimate.MODELS_DISAGREE),
    ],
)
def test_each_ground_fires_just_past_its_bound(changes, inside, past, reason) -> None:
    assert RULE.reasons(replace(CALM, **{changes: inside})) == ()
    assert RULE.reasons(replace(CALM, **{changes: past})) == (reason,)


def test_the_grounds_add_up() -> None:
    everything = replace(
        CALM, images=10, source_errors=3, calibration_gap=0.3, share_shift=0.5, agreement=0.2
    )
    assert RULE.reasons(everything) == (
        estimate.TOO_FEW_IMAGES,
        estimate.FEW_SOURCE_ERRORS,
        estimate.CONFIDENCE_DISAGREES,
        estimate.CLASS_SHARES_MOVED,
        estimate.MODELS_DISAGREE,
    )


def test_total_variation_is_the_share_of_images_that_must_change_class() -> None:
    half = np.array([0.5, 0.5] + [0.0] * 8)
    assert estimate.total_variation(half, np.eye(10)[0]) == 0.5
    assert estimate.total_variation(half, half) == 0.0

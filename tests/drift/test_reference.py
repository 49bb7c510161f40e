"""The reference an export records: ATC's threshold on known inputs, the seeded target
sample, the JSON file format and the inputs it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.softmax_streams import IN_DISTRIBUTION

from dann_serve.drift import estimate, reference
from dann_serve.drift.reference import Reference, build_reference


def rows(confidences: list[float], answers: list[int] | None = None) -> np.ndarray:
    """One row per confidence: that probability on the answered class (class 0 unless
    ``answers`` says), the rest spread evenly, so both ATC scores order rows alike."""
    answers = answers or [0] * len(confidences)
    table = np.empty((len(confidences), 10), dtype=np.float32)
    for row, (top, answer) in enumerate(zip(confidences, answers, strict=True)):
        table[row] = (1 - top) / 9
        table[row, answer] = top
    return table


# Ten source images with distinct confidences 0.2, 0.28, ..., 0.92, six answered right.
SOURCE = rows([0.2 + 0.08 * i for i in range(10)])
SOURCE_LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])


@pytest.mark.parametrize("score", sorted(estimate.SCORES))
def test_atc_threshold_and_estimate_on_a_constructed_set(score: str) -> None:
    built = build_reference(rows([0.5]), SOURCE, SOURCE_LABELS, score=score)
    assert built.source_accuracy == 0.6
    # 6 of 10 right: the threshold is the 7th largest score, that of confidence 0.44
    assert built.threshold == pytest.approx(estimate.scores(rows([0.44]), score)[0])
    assert np.mean(estimate.scores(SOURCE, score) > built.threshold) == 0.6
    # above 0.44: 0.45 and 0.9; at it or below: 0.44 and 0.3
    target = rows([0.3, 0.44, 0.45, 0.9])
    assert estimate.estimate_accuracy(target, score, built.threshold) == 0.5
    assert estimate.estimate_accuracy(target[:0], score, built.threshold) is None


def test_atc_threshold_when_all_or_none_are_right() -> None:
    scores = np.array([0.5, 0.7, 0.9])
    everyone = estimate.fit_threshold(scores, np.ones(3, dtype=bool))
    assert np.mean(scores > everyone) == 1.0 and everyone == np.nextafter(0.5, -1)
    nobody = estimate.fit_threshold(scores, np.zeros(3, dtype=bool))
    assert np.mean(scores > nobody) == 0.0 and nobody == 0.9


def test_atc_estimates_traffic_like_the_source_within_two_points() -> None:
    source, labels = IN_DISTRIBUTION.draw(3000, seed=1)
    served, truth = IN_DISTRIBUTION.draw(2000, seed=2)
    built = build_reference(served, source, labels)
    estimated = estimate.estimate_accuracy(served, built.score, built.threshold)
    assert estimated == pytest.approx(np.mean(served.argmax(axis=1) == truth), abs=0.02)


def test_source_figures_are_recorded() -> None:
    built = build_reference(rows([0.5]), SOURCE, SOURCE_LABELS)
    assert built.source_images == 10
    assert built.source_mean_confidence == pytest.approx(np.mean(SOURCE.max(axis=1)))
    assert built.source_gap == pytest.approx(built.source_mean_confidence - 0.6)


def test_the_target_sample_is_bounded_seeded_and_the_same_either_way() -> None:
    target, _ = IN_DISTRIBUTION.draw(5000, seed=3)
    built = build_reference(target, SOURCE, SOURCE_LABELS, max_images=2000, seed=4)
    assert built.probabilities.shape == (2000, 10)
    picked = reference.sample_indices(5000, 2000, seed=4)
    assert len(np.unique(picked)) == 2000
    np.testing.assert_array_equal(built.probabilities, target[picked])
    # an export may run the model on the picked images only: same reference
    again = build_reference(target[picked], SOURCE, SOURCE_LABELS, max_images=2000, seed=4)
    np.testing.assert_array_equal(again.probabilities, built.probabilities)
    other = build_reference(target, SOURCE, SOURCE_LABELS, max_images=2000, seed=5)
    assert not np.array_equal(other.probabilities, built.probabilities)
    small = build_reference(target[:30], SOURCE, SOURCE_LABELS)
    np.testing.assert_array_equal(small.probabilities, target[:30])
    np.testing.assert_allclose(built.class_shares.sum(), 1.0)


def test_json_round_trip_is_exact_and_plain_json(tmp_path) -> None:
    target, _ = IN_DISTRIBUTION.draw(300, seed=6)
    built = build_reference(target, SOURCE, SOURCE_LABELS, seed=7, score="max_confidence")
    payload = json.loads(json.dumps(built.to_json(), allow_nan=False))
    assert payload["format"] == reference.FORMAT
    assert payload["target"]["class_shares"] == pytest.approx(list(built.class_shares))
    back = Reference.from_json(payload)
    assert back.probabilities.dtype == np.float32
    np.testing.assert_array_equal(back.probabilities, built.probabilities)
    for name in ("score", "threshold", "source_images", "source_accuracy", "seed"):
        assert getattr(back, name) == getattr(built, name), name
    assert back.source_mean_confidence == built.source_mean_confidence
    path = tmp_path / reference.REFERENCE_FILE
    reference.save(built, path)
    np.testing.assert_array_equal(reference.load(path).probabilities, built.probabilities)
    with pytest.raises(ValueError, match="read-only"):
        back.probabilities[0, 0] = 1


def test_unknown_formats_and_broken_files_are_refused(tmp_path) -> None:
    payload = build_reference(rows([0.5]), SOURCE, SOURCE_LABELS).to_json()
    with pytest.raises(ValueError, match=r"format 2 unsupported \(reads 1\)"):
        Reference.from_json({**payload, "format": 2})
    with pytest.raises(ValueError, match="missing key 'atc'"):
        Reference.from_json({key: value for key, value in payload.items() if key != "atc"})
    lying = {**payload, "target": {**payload["target"], "images": 5}}
    with pytest.raises(ValueError, match=r"target\.images is 5, but 1 rows"):
        Reference.from_json(lying)
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json"):
        reference.load(path)


@pytest.mark.parametrize(
    ("target", "source", "labels", "message"),
    [
        (np.ones((4, 9)) / 9, SOURCE, SOURCE_LABELS, r"target probabilities: .*\(4, 9\)"),
        (rows([0.5, np.nan, 0.5]), SOURCE, SOURCE_LABELS, "target .*: NaN or infinity in row 1$"),
        (rows([0.5, 1.5, 1.5]), SOURCE, SOURCE_LABELS, r"outside \[0, 1\] in rows 1, 2$"),
        (
            rows([0.5]) * 2,
            SOURCE,
            SOURCE_LABELS,
            "target probabilities: a sum other than 1 in row 0",
        ),
        (rows([0.5]), SOURCE * 3, SOURCE_LABELS, "source probabilities: values outside"),
        (rows([0.5])[:0], SOURCE, SOURCE_LABELS, "no rows"),
        (rows([0.5]), SOURCE, SOURCE_LABELS[:9], "source labels: expected 10 integer labels"),
        (rows([0.5]), SOURCE, SOURCE_LABELS * 1.0, "source labels: expected 10 integer"),
        (rows([0.5]), SOURCE, SOURCE_LABELS + 9, r"source labels: must be in 0\.\.9"),
        (rows([0.5]), SOURCE[:0], SOURCE_LABELS[:0], "source probabilities: no rows"),
    ],
)
def test_bad_arrays_are_refused_by_name(target, source, labels, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_reference(target, source, labels)


def test_an_unknown_score_or_an_empty_sample_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ATC score: 'entropy' is not one of"):
        build_reference(rows([0.5]), SOURCE, SOURCE_LABELS, score="entropy")
    with pytest.raises(ValueError, match="max_images must be at least 1, got 0"):
        build_reference(rows([0.5]), SOURCE, SOURCE_LABELS, max_images=0)

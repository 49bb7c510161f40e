"""The sliding window: its bounds, concurrent adds, the snapshot's JSON, and the
estimate it reports with its reliability on traffic of known accuracy."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from support.softmax_streams import IN_DISTRIBUTION, SHIFTED

from dann_serve.drift import estimate
from dann_serve.drift.reference import build_reference
from dann_serve.drift.window import Window

SOURCE, SOURCE_LABELS = IN_DISTRIBUTION.draw(3000, seed=200)
REFERENCE = build_reference(IN_DISTRIBUTION.draw(2000, seed=201)[0], SOURCE, SOURCE_LABELS)


def numbered(first: int, count: int) -> np.ndarray:
    """Valid rows that carry their number: row ``n`` puts n / 1e5 on class 1."""
    marks = np.arange(first, first + count, dtype=np.float64) / 1e5
    table = np.zeros((count, 10))
    table[:, 1], table[:, 0] = marks, 1 - marks
    return table.astype(np.float32)


def numbers(rows: np.ndarray) -> list[int]:
    return [round(value * 1e5) for value in rows[:, 1].astype(np.float64)]


def test_the_window_keeps_the_newest_rows_oldest_first() -> None:
    window = Window(REFERENCE, capacity=5)
    window.add(numbered(0, 3))
    assert numbers(window.contents()[0]) == [0, 1, 2]
    window.add(numbered(3, 4))
    assert numbers(window.contents()[0]) == [2, 3, 4, 5, 6]
    window.add(numbered(7, 12))  # more than it holds at once
    assert numbers(window.contents()[0]) == [14, 15, 16, 17, 18]
    for start in range(19, 5000, 7):
        window.add(numbered(start, 7))
    rows, agrees = window.contents()
    assert rows.shape == (5, 10) and agrees.shape == (5,)
    assert window.snapshot().images == 5


def test_concurrent_adds_lose_no_row_and_keep_each_batch_whole() -> None:
    window = Window(REFERENCE, capacity=8 * 200 * 5)
    errors: list[BaseException] = []

    def adder(thread: int) -> None:
        for batch in range(200):
            window.add(numbered((thread * 200 + batch) * 5, 5))

    def reader() -> None:
        try:
            for _ in range(20):
                snapshot = window.snapshot()
                assert sum(snapshot.class_shares) == pytest.approx(1.0)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=adder, args=(n,)) for n in range(8)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    seen = numbers(window.contents()[0])
    assert sorted(seen) == list(range(8000))
    starts = [index for index in range(0, 8000, 5)]
    assert all(seen[i + 4] == seen[i] + 4 for i in starts), "a batch was interleaved"


def test_the_snapshot_speaks_the_contract() -> None:
    window = Window(REFERENCE)
    empty = json.loads(json.dumps(window.snapshot().to_json(), allow_nan=False))
    assert empty["images"] == 0 and empty["mean_confidence"] is None
    assert empty["estimated_accuracy"] is None and empty["estimate_reliable"] is False
    assert empty["class_shares"] == [0.0] * 10
    assert empty["drift"]["p_value"] == 1.0 and empty["drift"]["shifted"] is False
    window.add(IN_DISTRIBUTION.draw(700, seed=1)[0])
    payload = json.loads(json.dumps(window.snapshot().to_json(), allow_nan=False))
    assert list(payload)[:6] == [
        "images",
        "mean_confidence",
        "class_shares",
        "estimated_accuracy",
        "estimate_reliable",
        "drift",
    ]
    assert payload["images"] == 700
    assert 0 <= payload["mean_confidence"] <= 1 and 0 <= payload["estimated_accuracy"] <= 1
    assert len(payload["class_shares"]) == 10
    assert sum(payload["class_shares"]) == pytest.approx(1.0)
    assert isinstance(payload["drift"]["p_value"], float)
    assert isinstance(payload["drift"]["shifted"], bool)


def test_traffic_like_the_source_gets_a_reliable_estimate_within_two_points() -> None:
    window = Window(REFERENCE)
    served, truth = IN_DISTRIBUTION.draw(1000, seed=2)
    window.add(served)
    snapshot = window.snapshot()
    assert snapshot.estimate_reliable, snapshot.unreliable_because
    assert snapshot.estimated_accuracy == pytest.approx(
        np.mean(served.argmax(axis=1) == truth), abs=0.02
    )


def test_a_confidently_wrong_stream_is_flagged_and_its_estimate_untrusted() -> None:
    window = Window(REFERENCE)
    served, truth = SHIFTED["confidently wrong"].draw(1000, seed=3)
    window.add(served)
    snapshot = window.snapshot()
    assert snapshot.drift.shifted
    # ATC believes the confident answers, about 95% against 30% right...
    assert snapshot.estimated_accuracy > np.mean(served.argmax(axis=1) == truth) + 0.5
    # ...so the rule must refuse it: the answers folded onto three classes
    assert not snapshot.estimate_reliable
    assert estimate.CLASS_SHARES_MOVED in snapshot.unreliable_because


def test_too_few_images_are_never_reliable() -> None:
    window = Window(REFERENCE)
    window.add(IN_DISTRIBUTION.draw(499, seed=4)[0])
    snapshot = window.snapshot()
    assert not snapshot.estimate_reliable
    assert estimate.TOO_FEW_IMAGES in snapshot.unreliable_because


def test_a_second_models_answers_feed_the_agreement_check() -> None:
    window = Window(REFERENCE)
    served = IN_DISTRIBUTION.draw(1000, seed=5)[0]
    candidate = served.copy()
    candidate[600:] = np.roll(served[600:], 1, axis=1)  # another class for the last 400
    window.add(served[:300])  # no second model for these
    assert window.snapshot().agreement is None
    window.add(served[300:], candidate=candidate[300:])
    snapshot = window.snapshot()
    assert snapshot.agreement == pytest.approx(300 / 700)
    assert estimate.MODELS_DISAGREE in snapshot.unreliable_because


@pytest.mark.parametrize(
    ("rows", "candidate", "message"),
    [
        (np.ones((3, 10, 1)) / 10, None, r"served probabilities: .*\(3, 10, 1\)"),
        ([["a"] * 10], None, "served probabilities: not an array of numbers"),
        ([[0.1] * 10, [0.1] * 9], None, "served probabilities: not an array of numbers"),
        (np.full((3, 10), np.nan), None, "served probabilities: NaN or infinity in rows 0, 1, 2$"),
        (np.full((3, 10), 0.1), np.full((2, 10), 0.1), r"candidate .*\(2, 10\) differs"),
        (np.full((3, 10), 0.1), np.full((3, 10), 0.5), "candidate probabilities: a sum other"),
    ],
)
def test_bad_answers_are_refused_by_name(rows, candidate, message) -> None:
    window = Window(REFERENCE)
    with pytest.raises(ValueError, match=message):
        window.add(rows, candidate=candidate)
    assert window.snapshot().images == 0


def test_a_window_without_room_or_with_a_bad_significance_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1, got 0"):
        Window(REFERENCE, capacity=0)
    with pytest.raises(ValueError, match="significance: must be in"):
        Window(REFERENCE, significance=1.5)


def test_a_window_without_a_reference_reports_what_needs_none() -> None:
    rows = IN_DISTRIBUTION.draw(40, seed=210)[0]
    window = Window(None, capacity=100)
    window.add(rows)
    payload = window.snapshot().to_json()
    assert payload["images"] == 40
    assert payload["mean_confidence"] == pytest.approx(float(rows.max(axis=1).mean()))
    assert sum(payload["class_shares"]) == pytest.approx(1.0)
    assert (payload["estimated_accuracy"], payload["estimate_reliable"]) == (None, False)
    assert payload["unreliable_because"] == [estimate.NO_REFERENCE]
    assert payload["drift"] == {"p_value": None, "shifted": False}
    json.dumps(payload)  # JSON-safe


def test_a_reference_with_few_source_errors_never_trusts_its_estimate() -> None:
    """A model nearly perfect on its held-out source images leaves ATC's threshold in
    the far tail of its scores: the window says so, whatever the traffic."""
    sure = SOURCE.copy()
    sure[np.arange(len(SOURCE)), SOURCE_LABELS] += 10.0  # every answer right, but 29
    sure /= sure.sum(axis=1, keepdims=True)
    wrong = np.flatnonzero(sure.argmax(axis=1) == SOURCE_LABELS)[:29]
    sure[wrong] = np.roll(sure[wrong], 1, axis=1)
    perfect = build_reference(REFERENCE.probabilities, sure, SOURCE_LABELS)
    assert perfect.source_errors == 29
    window = Window(perfect)
    window.add(IN_DISTRIBUTION.draw(1000, seed=6)[0])
    snapshot = window.snapshot()
    assert estimate.FEW_SOURCE_ERRORS in snapshot.unreliable_because
    assert not snapshot.estimate_reliable
    assert REFERENCE.source_errors >= 30  # the ordinary reference is not refused for it

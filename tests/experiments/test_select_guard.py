"""What keeps ``train --select`` honest where the criterion alone would not: the guard
that passes over a candidate piling the target onto a few classes, and the textured
candidates a colour target gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dann_serve import data
from dann_serve.config import TrainConfig
from dann_serve.data import Domain, Split, is_colour
from dann_serve.experiments.criteria import Readout, class_shift
from dann_serve.experiments.selection import (
    CANDIDATES,
    CLASS_SHIFT_TOLERANCE,
    COLOUR_CANDIDATES,
    FAR_CANDIDATES,
    NEAR_CANDIDATES,
    candidate_configs,
    passed_over,
    select_run,
    top_scored,
)

OPTIONS = {"steps": 20, "batch_size": 32, "eval_every": 10}


def _row(name: str, entropy: float, shift: float | None) -> dict:
    row = {"name": name, "scores": {"entropy": entropy}}
    return row if shift is None else {**row, "class_shift": shift}


def test_class_shift_is_the_distance_between_predicted_and_source_class_shares() -> None:
    logits = np.eye(10)[[0, 0, 0, 1]]  # three images read as 0, one as 1
    source_labels = np.array([0, 1, 2, 3])  # a quarter each of 0, 1, 2, 3
    shift = class_shift(source_labels, Readout(np.zeros((4, 1)), logits, None))
    assert shift == pytest.approx(0.5)  # 0.75 - 0.25 moved off class 0, to 2 and 3
    balanced = np.eye(10)[[0, 1, 2, 3]]
    assert class_shift(source_labels, Readout(np.zeros((4, 1)), balanced, None)) == 0.0


def test_the_most_confident_candidate_is_passed_over_when_it_piles_up_classes() -> None:
    rows = [
        _row("source-only", -0.50, 0.20),
        _row("cdan", -0.05, 0.20 + CLASS_SHIFT_TOLERANCE + 0.01),  # confident, skewed
        _row("dann", -0.09, 0.20 + CLASS_SHIFT_TOLERANCE - 0.01),  # within the tolerance
    ]
    assert passed_over(rows) == [False, True, False]
    assert rows[top_scored(rows, "entropy")]["name"] == "dann"


def test_source_only_is_kept_when_every_adapting_candidate_is_passed_over() -> None:
    rows = [_row("source-only", -0.5, 0.1), _row("dann", -0.1, 0.3), _row("cdan", -0.2, 0.4)]
    assert top_scored(rows, "entropy") == 0
    # The fallback itself is never passed over, however skewed it is.
    assert passed_over([_row("source-only", -0.5, 0.9)]) == [False]


def test_rows_scored_before_the_guard_existed_are_ranked_by_the_criterion_alone() -> None:
    rows = [_row("source-only", -0.5, None), _row("dann", -0.1, 0.6)]
    assert passed_over(rows) == [False, False]
    assert top_scored(rows, "entropy") == 1


def test_a_far_colour_target_gets_textured_candidates_only() -> None:
    base = TrainConfig(method="cdan", seed=3)
    names = [name for name, _ in candidate_configs(base, close=False, colour=True)]
    assert names == list(COLOUR_CANDIDATES)
    # Domains that start close keep the near set, colour or not.
    names = [name for name, _ in candidate_configs(base, close=True, colour=True)]
    assert names == list(NEAR_CANDIDATES)
    assert COLOUR_CANDIDATES[0] == "source-only"
    assert {*FAR_CANDIDATES, *NEAR_CANDIDATES, *COLOUR_CANDIDATES} == set(CANDIDATES)


def _on_colour(split: Split, seed: int) -> Split:
    """The split's digits blended onto flat random colours, MNIST-M's way."""
    colours = np.random.default_rng(seed).integers(0, 256, (len(split), 1, 1, 3))
    blended = np.abs(colours - split.images.astype(np.int16)).astype(np.uint8)
    return Split(blended, split.labels)


@pytest.fixture(scope="module")
def colour_pair(tiny_source: Domain, tiny_target: Domain) -> Iterator[tuple[str, str]]:
    colour = Domain(
        "tiny-colour",
        train=_on_colour(tiny_target.train, 1),
        test=_on_colour(tiny_target.test, 2),
    )
    assert is_colour(colour.train.images) and not is_colour(tiny_target.train.images)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(data.LOADERS, tiny_source.name, lambda _dir: tiny_source)
        patch.setitem(data.LOADERS, colour.name, lambda _dir: colour)
        yield tiny_source.name, colour.name


@pytest.mark.slow
def test_a_selection_reads_the_target_as_colour_and_trains_the_textured_set(
    colour_pair, tmp_path: Path
) -> None:
    from dann_serve.cli.train import selection_lines

    source, target = colour_pair
    run_dir = tmp_path / "run"
    config = TrainConfig(source=source, target=target, **OPTIONS)
    summary = select_run(config, run_dir, show_progress=False)
    selection = summary["selection"]
    assert selection["colour"] is True
    assert [row["name"] for row in selection["candidates"]] == list(COLOUR_CANDIDATES)
    assert not (run_dir / "candidates" / "dann").exists()
    # Read once and kept, so that --resume trains the same candidates.
    assert json.loads((run_dir / "selection.json").read_text())["colour"] is True
    assert "the target is in colour" in selection_lines(selection)[1]


@pytest.mark.slow
def test_a_selection_saved_before_colour_was_read_resumes_its_own_candidates(
    colour_pair, tmp_path: Path
) -> None:
    """A selection.json written before the colour set existed names the far candidates'
    folders only and no colour: resumed, it trains the candidates it began with."""
    source, target = colour_pair
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = TrainConfig(source=source, target=target, **OPTIONS)
    old = ("source-only", "dann", "cdan", "dann-weak", "dann-cw")
    plan = {
        "criterion": "entropy",
        "separability": 0.99,
        "base": dict(vars(config)),
        "locations": {name: f"candidates/{name}" for name in old},
    }
    (run_dir / "selection.json").write_text(json.dumps(plan))
    summary = select_run(config, run_dir, resume=True, show_progress=False)
    names = [row["name"] for row in summary["selection"]["candidates"]]
    assert names == list(FAR_CANDIDATES)
    assert summary["selection"]["colour"] is False

"""``train --select``: candidates on the same data, the top label-free score kept.

What a user relies on: adaptation that hurts can lose (source-only is always a
candidate); the run kept is the one the criterion ranks first and is an ordinary
run; no target label takes part in the choice; an interrupted selection resumes.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from support import tiny_data

from dann_serve import data
from dann_serve.config import CHEAP_CRITERIA, TrainConfig
from dann_serve.data import UNKNOWN_LABEL, Domain, Split
from dann_serve.experiments.criteria import Readout, separability
from dann_serve.experiments.selection import (
    CANDIDATES,
    FAR_CANDIDATES,
    NEAR_CANDIDATES,
    NEAR_SEPARABILITY,
    candidate_configs,
    select_run,
)
from dann_serve.training.evaluation import restore_model
from dann_serve.training.methods import get_method

OPTIONS = {"steps": 20, "batch_size": 32, "eval_every": 10}


@pytest.fixture(scope="module")
def selected(tiny_pair, tmp_path_factory) -> Path:
    """A finished selection on the tiny pair (read-only for the tests)."""
    source, target = tiny_pair
    run_dir = tmp_path_factory.mktemp("select") / "run"
    select_run(TrainConfig(source=source, target=target, **OPTIONS), run_dir, show_progress=False)
    return run_dir


@pytest.mark.parametrize("close", [False, True])
def test_source_only_is_a_candidate_whatever_the_base_options(close: bool) -> None:
    base = TrainConfig(information_weight=0.5, method="cdan", lambda_max=0.3, seed=7)
    configs = dict(candidate_configs(base, close))
    assert configs["source-only"].method == "source-only"
    # Every candidate differs from the base run in its method alone: same data, seed, steps.
    for name, config in configs.items():
        assert config == dataclasses.replace(base, method=name)
    assert "dann" in configs
    assert len(configs) == 4  # the cost stays four runs either way


def test_every_candidate_is_a_registered_method_with_its_description() -> None:
    from dann_serve.training.methods import get_method, method_names

    assert set(CANDIDATES) <= set(method_names())
    assert FAR_CANDIDATES[0] == NEAR_CANDIDATES[0] == "source-only"
    # The weak reversal is weak whatever --lambda-max asks, never stronger than asked.
    assert get_method("dann-weak").reversal_strength(1.0) == 0.1
    assert get_method("dann-weak").reversal_strength(0.05) == 0.05
    assert get_method("source-only").reversal_strength(1.0) == 0.0


def _readout(features: np.ndarray) -> Readout:
    return Readout(features, np.zeros((len(features), 10)), None)


def test_separability_reads_how_far_apart_two_feature_samples_are() -> None:
    rng = np.random.default_rng(3)
    source = _readout(rng.normal(size=(400, 50)))
    same = _readout(rng.normal(size=(300, 50)))  # another sample of the same distribution
    shifted = _readout(rng.normal(size=(300, 50)) + 0.5)
    assert separability(source, same) < 0.6
    assert separability(source, shifted) > 0.95


@pytest.mark.slow
def test_the_chosen_candidate_is_the_top_scored_and_the_run_is_ordinary(selected: Path) -> None:
    summary = json.loads((selected / "summary.json").read_text())
    selection = summary["selection"]
    rows = selection["candidates"]
    # Printed glyphs against handwriting: far apart, so CDAN competes, not a weak reversal.
    assert selection["separability"] >= NEAR_SEPARABILITY
    assert [row["name"] for row in rows] == list(FAR_CANDIDATES)
    assert rows[2]["description"] == get_method("cdan").description
    # The top score among the candidates the class-share guard let through.
    scores = [
        -np.inf if row["passed_over"] else row["scores"][selection["criterion"]] for row in rows
    ]
    best = rows[int(np.argmax(scores))]
    assert all(0.0 <= row["class_shift"] <= 1.0 for row in rows)
    assert selection["chosen"] == best["name"] and best["chosen"]
    assert sum(row["chosen"] for row in rows) == 1
    for row in rows:  # every cheap criterion is recorded for the report
        assert set(CHEAP_CRITERIA) <= set(row["scores"])
    # The run directory holds the chosen candidate's model, as evaluate and export read it.
    kept, original = restore_model(selected), restore_model(Path(best["path"]))
    for a, b in zip(kept.weights, original.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert summary["target_test_accuracy"] == best["target_test_accuracy"]
    assert json.loads((selected / "config.json").read_text())["options"]["method"] == best["name"]
    assert summary["method"] == best["name"]


@pytest.mark.slow
def test_the_command_line_says_why_these_candidates_and_which_was_kept(
    selected: Path, close_selected: Path
) -> None:
    from dann_serve.cli.train import selection_lines

    far = json.loads((selected / "summary.json").read_text())["selection"]
    lines = selection_lines(far)
    assert lines[0] == (
        f"domain separability {far['separability']:.3f} >= {NEAR_SEPARABILITY}: "
        "the domains start far apart, CDAN competes"
    )
    assert [line[2:].split()[0] for line in lines[1:]] == list(FAR_CANDIDATES)
    starred = [line[2:].split()[0] for line in lines[1:] if line.startswith("*")]
    assert starred == [far["chosen"]]
    close = json.loads((close_selected / "summary.json").read_text())["selection"]
    assert "the domains start close, a weak reversal competes" in selection_lines(close)[0]


def _without_labels(split: Split) -> Split:
    return Split(split.images, np.full(len(split), UNKNOWN_LABEL, np.int64))


@pytest.mark.slow
def test_the_selection_does_not_read_target_labels(selected, tiny_pair, tiny_target, tmp_path):
    """The same selection on the same target images with every target label removed
    (train and test) scores every candidate the same and keeps the same one: were the
    training, a criterion or the choice to read a target label (e.g. the accuracy each
    candidate logs), the scores would differ or the selection fail."""
    unlabelled = Domain(
        "tiny-digits-unlabelled",
        train=_without_labels(tiny_target.train),
        test=_without_labels(tiny_target.test),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(data.LOADERS, unlabelled.name, lambda _dir: unlabelled)
        blind = select_run(
            TrainConfig(source=tiny_pair[0], target=unlabelled.name, **OPTIONS),
            tmp_path / "blind",
            show_progress=False,
        )["selection"]
    seen = json.loads((selected / "summary.json").read_text())["selection"]
    assert blind["chosen"] == seen["chosen"]
    assert blind["separability"] == seen["separability"]
    for with_labels, without in zip(seen["candidates"], blind["candidates"], strict=True):
        assert without["scores"] == with_labels["scores"]
        assert without["target_test_accuracy"] is None


@pytest.fixture(scope="module")
def twin_pair(tiny_source) -> Iterator[tuple[str, str]]:
    """Source and target drawn from the same printed-digit generator: domains that a
    linear classifier cannot tell apart."""
    from dann_serve.data.fonts import generate

    twin = Domain("tiny-fonts-twin", train=generate(256, seed=20), test=generate(100, seed=21))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(data.LOADERS, tiny_source.name, lambda _dir: tiny_source)
        patch.setitem(data.LOADERS, twin.name, lambda _dir: twin)
        yield tiny_source.name, twin.name


@pytest.fixture(scope="module")
def close_selected(twin_pair, tmp_path_factory) -> Path:
    """A finished selection on the twin pair (read-only for the tests)."""
    run_dir = tmp_path_factory.mktemp("close") / "run"
    select_run(TrainConfig(*twin_pair, **OPTIONS), run_dir, show_progress=False)
    return run_dir


@pytest.mark.slow
def test_close_domains_try_a_weak_reversal_in_place_of_cdan(close_selected: Path) -> None:
    selection = json.loads((close_selected / "summary.json").read_text())["selection"]
    assert selection["separability"] < NEAR_SEPARABILITY
    assert [row["name"] for row in selection["candidates"]] == list(NEAR_CANDIDATES)
    weak = json.loads((close_selected / "candidates/dann-weak/config.json").read_text())
    assert weak["options"]["method"] == "dann-weak"
    lambdas = (close_selected / "candidates/dann-weak/metrics.csv").read_text().splitlines()
    assert float(lambdas[-1].split(",")[3]) == pytest.approx(0.1, rel=0.01)  # capped
    assert not (close_selected / "candidates/cdan").exists()
    # The measure is kept for --resume, beside the options the selection started with.
    plan = json.loads((close_selected / "selection.json").read_text())
    assert plan["separability"] == selection["separability"]


@pytest.mark.slow
def test_an_interrupted_selection_resumes_where_it_stopped(tiny_pair, tmp_path) -> None:
    run_dir = tmp_path / "run"
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in OPTIONS.items()]
    process = tiny_data.start_cli(
        "train",
        f"--source={tiny_data.SOURCE}",
        f"--target={tiny_data.TARGET}",
        *flags,
        "--select",
        "--quiet",
        f"--out={run_dir}",
        log=tmp_path / "log",
    )
    second = run_dir / "candidates" / CANDIDATES[1]
    deadline = time.monotonic() + 120
    while tf.train.latest_checkpoint(str(second / "checkpoints")) is None:
        assert process.poll() is None, (tmp_path / "log").read_text()
        assert time.monotonic() < deadline, "the second candidate never checkpointed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL
    first = run_dir / "candidates" / CANDIDATES[0]
    finished_first = (first / "summary.json").stat().st_mtime_ns
    assert not (run_dir / "summary.json").exists()

    source, target = tiny_pair
    summary = select_run(
        TrainConfig(source=source, target=target), run_dir, resume=True, show_progress=False
    )

    assert (first / "summary.json").stat().st_mtime_ns == finished_first  # not retrained
    # The measure taken before the kill chose the candidates of the resumed selection.
    measured = json.loads((run_dir / "selection.json").read_text())["separability"]
    assert summary["selection"]["separability"] == measured
    trained = [row["name"] for row in summary["selection"]["candidates"]]
    close = measured < NEAR_SEPARABILITY
    assert trained == list(NEAR_CANDIDATES if close else FAR_CANDIDATES)
    for name in trained:
        steps = [
            int(line.split(",")[0])
            for line in (run_dir / "candidates" / name / "metrics.csv").read_text().splitlines()[1:]
        ]
        assert steps == list(range(0, OPTIONS["steps"] + 1, OPTIONS["eval_every"]))
    assert summary["step"] == OPTIONS["steps"]
    assert summary["selection"]["chosen"] in trained


@pytest.mark.slow
def test_a_selection_is_not_started_over_an_existing_run(selected: Path) -> None:
    from dann_serve.training.rundir import RunError

    with pytest.raises(RunError, match="already exists"):
        select_run(TrainConfig(), selected, show_progress=False)

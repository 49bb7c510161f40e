"""Reverse validation: a label-free score, so it must not move when target labels do."""

import dataclasses
import re

import numpy as np
import pytest
from click.testing import CliRunner

from dann_serve import data
from dann_serve.cli import main
from dann_serve.data.pipeline import ordered_batches, to_unit_range
from dann_serve.experiments.reverse_validation import reverse_validation
from dann_serve.training.evaluation import decisions, restore_model

STEPS = 30


def test_decisions_are_the_models_argmax(trained_run, tiny_target) -> None:
    model = restore_model(trained_run)
    batches = ordered_batches(tiny_target.train)
    images = np.concatenate([to_unit_range(x).numpy() for x, _ in batches])
    expected = np.argmax(model(images, training=False)[0].numpy(), axis=-1)
    np.testing.assert_array_equal(decisions(model, tiny_target.train)[0], expected)


@pytest.mark.slow
def test_the_score_ignores_the_target_labels(trained_run, tiny_pair, tiny_target, monkeypatch):
    score = reverse_validation(trained_run, steps=STEPS)
    assert 0.0 <= score <= 1.0

    rng = np.random.default_rng(0)
    scrambled = dataclasses.replace(
        tiny_target,
        train=dataclasses.replace(
            tiny_target.train, labels=rng.permutation(tiny_target.train.labels)
        ),
        test=dataclasses.replace(tiny_target.test, labels=np.zeros_like(tiny_target.test.labels)),
    )
    monkeypatch.setitem(data.LOADERS, tiny_pair[1], lambda _dir: scrambled)
    assert reverse_validation(trained_run, steps=STEPS) == pytest.approx(score, abs=1e-9)


def test_cli_scores_every_run_and_names_the_bad_one(trained_run, tiny_pair, tmp_path) -> None:
    missing = tmp_path / "no-such-run"
    result = CliRunner().invoke(
        main, ["reverse-validate", str(missing), str(trained_run), "--steps", str(STEPS), "--quiet"]
    )
    assert result.exit_code == 1
    scored = rf"{re.escape(str(trained_run))}: reverse validation [01]\.\d{{4}}"
    assert re.search(scored, result.output)
    assert f"dann-serve: error: {missing}: not a training run" in result.output
    assert "Traceback" not in result.output

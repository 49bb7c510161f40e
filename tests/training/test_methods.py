"""Adaptation methods as registered objects: what each built-in one changes, that a
method registered from outside the package trains through the ordinary entry point,
and that a run names its method wherever it is read back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from dann_serve.config import TrainConfig
from dann_serve.training.losses import ONE, entropies
from dann_serve.training.methods import (
    AdaptationMethod,
    Batch,
    get_method,
    method_names,
    register,
    unregister,
)
from dann_serve.training.rundir import RunError, load_config

TOY = "toy-uniform"


def _batch(source_labels: list[int], logits: np.ndarray, target_share: list[float]) -> Batch:
    return Batch(
        source_labels=tf.constant(source_labels, tf.int64),
        label_logits=tf.constant(logits, tf.float32),
        source_count=len(source_labels),
        replicas=ONE,
        source_share=tf.constant([0.1] * 10),
        target_share=tf.constant(target_share, tf.float32),
    )


def test_the_selection_candidates_come_first_in_the_registry() -> None:
    built_in = ("source-only", "dann", "cdan", "dann-weak", "dann-cw")
    assert method_names()[: len(built_in)] == built_in
    assert [get_method(name).conditional for name in built_in] == [0, 0, 1, 0, 0]


def test_an_unknown_method_is_one_line_naming_the_choices(tiny_pair, tmp_path) -> None:
    from dann_serve.training.loop import train_run

    config = TrainConfig(*tiny_pair, method="nope", steps=2)
    with pytest.raises(ValueError, match=r"unknown method 'nope': choose one of source-only, "):
        train_run(config, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_cdan_weighs_confident_predictions_more() -> None:
    logits = np.zeros((4, 10), np.float32)
    logits[0, 3] = logits[2, 5] = 20.0  # rows 0 and 2 certain, rows 1 and 3 uniform
    weights = get_method("cdan").domain_weights(_batch([3, 1], logits, [0.1] * 10)).numpy()
    np.testing.assert_allclose(weights, [2.0, 1.1, 2.0, 1.1], atol=1e-4)  # 1 + exp(-H)
    expected = 1.0 + np.exp(-entropies(tf.constant(logits)).numpy())
    np.testing.assert_allclose(weights, expected, rtol=1e-6)


def test_class_weighting_weighs_source_images_by_their_class_ratio() -> None:
    share = [0.2, 0.05] + [0.75 / 8] * 8  # the target seems rich in 0s, poor in 1s
    batch = _batch([0, 1, 0], np.zeros((6, 10), np.float32), share)
    weights = get_method("dann-cw").domain_weights(batch).numpy()
    np.testing.assert_allclose(weights, [2.0, 0.5, 2.0, 1.0, 1.0, 1.0], rtol=1e-5)
    assert get_method("dann").domain_weights(batch) is None


class _UniformToy(AdaptationMethod):
    """DANN that spells out every image's weight (all 1) and notes that it was asked."""

    name = TOY
    description = "a test's own method"
    asked: ClassVar[list[str]] = []

    def domain_weights(self, batch: Batch) -> tf.Tensor:
        _UniformToy.asked.append("domain_weights")  # runs while the step is traced
        return tf.ones(2 * batch.source_count)


@pytest.fixture()
def toy_method() -> Iterator[str]:
    """The toy method registered for one test, withdrawn after it."""
    register(_UniformToy)
    _UniformToy.asked.clear()
    yield TOY
    unregister(TOY)


def test_a_method_registered_outside_the_package_trains_and_is_named(
    toy_method, tiny_pair, tmp_path
) -> None:
    from dann_serve.training.loop import train_run

    config = TrainConfig(*tiny_pair, method=toy_method, steps=2, batch_size=32, eval_every=1)
    summary = train_run(config, tmp_path / "run", show_progress=False)
    assert summary["method"] == TOY and summary["step"] == 2
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["method"] == TOY
    assert load_config(tmp_path / "run").method == TOY
    assert "domain_weights" in _UniformToy.asked  # the step called the method's hook


def test_a_name_is_registered_once(toy_method) -> None:
    class Impostor(AdaptationMethod):
        name = TOY
        description = "another method under a taken name"

    with pytest.raises(ValueError, match="registered already"):
        register(Impostor)
    register(_UniformToy)  # the same method again changes nothing
    assert get_method(TOY).description == "a test's own method"


def test_a_run_saved_before_methods_existed_is_refused_not_read_as_dann(tmp_path) -> None:
    """config.json of a CDAN run from before --method: reading it as the default method
    would evaluate, export or resume a network other than the one trained."""
    from dann_serve.cli import main

    former = {k: v for k, v in vars(TrainConfig()).items() if k != "method"}
    former |= {"mode": "dann", "conditional": True, "class_weighting": False}
    (tmp_path / "config.json").write_text(json.dumps({"options": former}))
    with pytest.raises(RunError, match="older than --method"):
        load_config(tmp_path)
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path), "--dataset", "digits"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert "older than --method (it names mode, conditional, class_weighting)" in line


def test_the_command_line_and_the_registry_load_without_tensorflow() -> None:
    """``dann-serve --help`` lists the methods' descriptions: importing them must not
    cost TensorFlow's start-up."""
    code = (
        "import sys, dann_serve.cli, dann_serve.training.methods as m; "
        "assert m.method_names(); print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr

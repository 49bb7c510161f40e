"""--precision mixed_bfloat16: the training model computes in bfloat16, everything a
user keeps (checkpoints, the weight average, evaluation, the export) stays float32."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.model.networks import build_model
from dann_serve.training.evaluation import restore_model
from dann_serve.training.loop import train_run


@pytest.fixture(scope="module")
def bf16_run(tiny_pair, tmp_path_factory):
    source, target = tiny_pair
    run_dir = tmp_path_factory.mktemp("bf16") / "run"
    config = TrainConfig(
        source=source, target=target, steps=20, batch_size=32, eval_every=10,
        precision="mixed_bfloat16",
    )  # fmt: skip
    return run_dir, train_run(config, run_dir, show_progress=False)


def test_the_training_model_computes_in_bfloat16_with_float32_variables() -> None:
    model = build_model(TrainConfig(), "mixed_bfloat16")
    label_logits, _ = model(tf.random.uniform((2, 32, 32, 3)), training=True)
    assert label_logits.dtype == tf.bfloat16
    assert {w.dtype for w in model.weights} == {"float32"}
    # The input normalisation measures brightness: float32 under any policy.
    assert [layer.dtype_policy.name for layer in model.features.layers[:3]] == ["float32"] * 3
    # Building it leaves the process's policy as it was, for every later model.
    assert keras.config.dtype_policy().name == "float32"


def test_a_bfloat16_run_trains_and_restores_as_a_float32_model(bf16_run) -> None:
    run_dir, summary = bf16_run
    assert summary["step"] == 20 and np.isfinite(summary["source_test_accuracy"])
    model = restore_model(run_dir)
    label_logits, _ = model(tf.random.uniform((2, 32, 32, 3)), training=False)
    assert label_logits.dtype == tf.float32


def test_unknown_precision_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        TrainConfig(precision="float8")

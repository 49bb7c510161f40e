"""Minimum Class Confusion as a method: its loss reads class confusion in the target
predictions as the paper defines it, the same on one device and over replicas, and it
trains through the ordinary entry point without a reversal."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.training.losses import ONE
from dann_serve.training.methods import get_method, method_names
from dann_serve.training.methods.mcc import TEMPERATURE, class_confusion

CONFIDENT = 30.0  # a logit margin that stays nearly one-hot after the temperature


def _loss(logits: np.ndarray) -> float:
    return float(class_confusion(tf.constant(logits, tf.float32), ONE))


def _one_hot(classes: list[int], margin: float = CONFIDENT) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[classes] * margin


def _paper(logits: np.ndarray) -> float:
    """Jin et al. 2020, eqs. 1-6, in numpy: temperature-scaled probabilities, entropy
    weights scaled to the batch size, class correlation, rows normalised, the mean
    over classes of the off-diagonal sum."""
    scaled = logits / TEMPERATURE
    p = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    entropy = -(p * np.log(p)).sum(axis=1)
    w = 1.0 + np.exp(-entropy)
    w = len(p) * w / w.sum()
    c = p.T @ np.diag(w) @ p
    c = c / c.sum(axis=1, keepdims=True)
    return float((c.sum() - np.trace(c)) / c.shape[0])


def test_confident_diverse_unconfused_predictions_cost_little() -> None:
    assert _loss(_one_hot(list(range(10)) * 2)) < 0.01


def test_confused_predictions_cost_much() -> None:
    pairs = np.zeros((20, 10), np.float32)
    for row in range(20):  # each image split between digits 2k and 2k + 1
        first = 2 * (row % 5)
        pairs[row, [first, first + 1]] = CONFIDENT
    confused = _loss(pairs)
    assert confused == pytest.approx(0.5, abs=0.01)  # half of each row off the diagonal
    assert confused > 50 * _loss(_one_hot(list(range(10)) * 2))


def test_identical_predictions_cost_the_most_whatever_their_confidence() -> None:
    """Every image predicting the same distribution p makes each normalised row of the
    correlation p itself: the diagonal holds p, and (classes - 1) / classes is off it.
    So a batch collapsed onto one class is as confused as an undecided one."""
    assert _loss(np.zeros((20, 10), np.float32)) == pytest.approx(0.9, abs=1e-5)
    assert _loss(_one_hot([3] * 20)) == pytest.approx(0.9, abs=1e-5)


def test_the_loss_is_the_papers_definition() -> None:
    rng = np.random.default_rng(0)
    for scale in (0.5, 3.0, 10.0):
        logits = (scale * rng.normal(size=(24, 10))).astype(np.float32)
        assert _loss(logits) == pytest.approx(_paper(logits), rel=1e-5)


def test_mcc_is_offered_by_method_without_a_reversal() -> None:
    from dann_serve.experiments.selection import CANDIDATES

    assert "mcc" in method_names()
    assert "mcc" not in CANDIDATES  # a candidate only once it is shown to help
    method = get_method("mcc")
    assert method.reversal_strength(1.0) == 0.0 and not method.conditional


def test_mcc_trains_two_steps(tiny_pair, tmp_path) -> None:
    from dann_serve.training.loop import train_run
    from dann_serve.training.rundir import read_metrics

    config = TrainConfig(*tiny_pair, method="mcc", steps=2, batch_size=32, eval_every=1)
    summary = train_run(config, tmp_path / "run", show_progress=False)
    assert summary["method"] == "mcc" and summary["step"] == 2
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [float(row["lambda"]) for row in rows] == [0.0, 0.0, 0.0]  # no reversal
    assert all(np.isfinite(float(row["label_loss"])) for row in rows)


REPLICAS = """
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from dann_serve.training.losses import Replicas
from dann_serve.training.methods.mcc import class_confusion

logits = tf.constant(3 * np.random.default_rng(0).normal(size=(16, 10)).astype(np.float32))

def with_gradient(rows, replicas):
    with tf.GradientTape() as tape:
        tape.watch(rows)
        value = class_confusion(rows, replicas)
    return value, tape.gradient(value, rows)

whole, gradient = with_gradient(logits, Replicas(1))
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices()])

def replica():
    index = tf.distribute.get_replica_context().replica_id_in_sync_group
    return with_gradient(tf.gather(logits, tf.range(8) + 8 * index), Replicas(2))

values, gradients = strategy.run(tf.function(replica))
summed = strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)
joined = tf.concat(strategy.experimental_local_results(gradients), axis=0)
print(json.dumps({
    "one device": float(whole),
    "replicas": float(summed),
    "gradient difference": float(tf.reduce_max(tf.abs(joined - gradient))),
    "gradient size": float(tf.reduce_max(tf.abs(gradient))),
}))
"""


@pytest.mark.slow
def test_two_replicas_sum_to_the_one_device_loss_and_gradient() -> None:
    """The correlation matrix is a statistic of the whole batch: each replica's part
    must add up to the one-device loss, not to the mean of per-slice losses."""
    done = subprocess.run(
        [sys.executable, "-c", REPLICAS], capture_output=True, text=True, timeout=120, check=True
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["replicas"] == pytest.approx(figures["one device"], rel=1e-6)
    assert figures["gradient difference"] <= 1e-6 * figures["gradient size"]

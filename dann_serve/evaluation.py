"""Accuracy of a model or of a saved run on any data set split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from dann_serve import datasets
from dann_serve.datasets import Split
from dann_serve.model import DANN, build_model
from dann_serve.pipeline import ordered_batches, to_unit_range
from dann_serve.rundir import CHECKPOINTS, RunError, load_config


def _hits(model: DANN, split: Split, head: int, expected: int | None) -> int:
    hits = 0
    for images, labels in ordered_batches(split):
        logits = model(to_unit_range(images), training=False)[head]
        if expected is not None:  # every image of the split belongs to one domain
            labels = tf.fill(tf.shape(labels), tf.constant(expected, tf.int64))
        hits += int(tf.reduce_sum(tf.cast(tf.argmax(logits, -1) == labels, tf.int32)))
    return hits


def accuracy(model: DANN, split: Split) -> float:
    """Label accuracy of ``model`` on a whole split."""
    return _hits(model, split, head=0, expected=None) / max(len(split), 1)


def domain_accuracy(model: DANN, source: Split, target: Split) -> float:
    """Balanced accuracy of the domain head on two splits (0.5: domains confused)."""
    rates = [
        _hits(model, split, head=1, expected=domain) / max(len(split), 1)
        for domain, split in enumerate((source, target))
    ]
    return float(np.mean(rates))


def restore_model(run_dir: Path) -> DANN:
    """The model of a run at its latest checkpoint, built from the run's config."""
    config = load_config(run_dir)
    latest = tf.train.latest_checkpoint(str(run_dir / CHECKPOINTS))
    if latest is None:
        raise RunError(f"{run_dir}: no checkpoint in {run_dir / CHECKPOINTS}")
    model = build_model(config)
    # The averaged weights are the run's model (see Trainer); the raw ones only
    # matter to --resume.
    if not any(name.startswith("averaged/") for name, _ in tf.train.list_variables(latest)):
        raise RunError(f"{latest}: holds no averaged weights (not a dann-serve checkpoint?)")
    tf.train.Checkpoint(averaged=model).restore(latest).expect_partial()
    return model


def evaluate_run(
    run_dir: Path, dataset: str, split: str = "test", data_dir: str | Path | None = None
) -> float:
    """Label accuracy of a run's latest checkpoint on ``dataset``'s ``split``."""
    model = restore_model(Path(run_dir))
    return accuracy(model, datasets.load(dataset, data_dir).split(split))

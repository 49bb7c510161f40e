"""Accuracy of a model or of a saved run on any data set split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from dann_client.contract import NUM_CLASSES
from dann_serve import data
from dann_serve.config import TrainConfig
from dann_serve.data import Split
from dann_serve.data.pipeline import ordered_batches, to_unit_range
from dann_serve.model.networks import DANN, build_model
from dann_serve.training.methods import get_method
from dann_serve.training.rundir import CHECKPOINTS, RunError, load_config


def decisions(model: DANN, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """The digit and the domain ``model`` decides for every image of ``split``, in order.

    Both heads come out of the same forward pass, so the metrics of a training run
    cost one pass per split, not one per metric. The split's labels are not read.
    """
    labels, domains = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for images, _ in ordered_batches(split):
        label_logits, domain_logits = model(to_unit_range(images), training=False)
        labels.append(tf.argmax(label_logits, -1).numpy())
        domains.append(tf.argmax(domain_logits, -1).numpy())
    return np.concatenate(labels), np.concatenate(domains)


def _hit_counts(model: DANN, split: Split, domain: int) -> tuple[int, int]:
    """Correct digit labels and correct domain calls over one pass through ``split``."""
    label_decisions, domain_decisions = decisions(model, split)
    return (int(np.sum(label_decisions == split.labels)), int(np.sum(domain_decisions == domain)))


def accuracy(model: DANN, split: Split) -> float:
    """Label accuracy of ``model`` on a whole (labelled) split."""
    return _hit_counts(model, split, domain=0)[0] / max(len(split), 1)


def label_free_figures(model: DANN, split: Split) -> dict:
    """What can be known of ``model`` on a split without its labels: the share of
    images given each class, and the share the domain head calls target."""
    label_decisions, domain_decisions = decisions(model, split)
    counts = np.bincount(label_decisions, minlength=NUM_CLASSES)
    return {
        "predicted_classes": [round(float(c) / max(len(split), 1), 4) for c in counts],
        "called_target": round(float(np.mean(domain_decisions == 1)) if len(split) else 0.0, 4),
    }


def pair_accuracies(model: DANN, source: Split, target: Split) -> dict[str, float | None]:
    """Label accuracy on each split and the domain head's balanced accuracy.

    The domain accuracy is the mean of the per-domain rates (0.5: domains confused),
    so a small target split weighs as much as a large source one. The target accuracy
    is None when the target split has no labels: unknown, not zero.
    """
    source_labels, source_domains = _hit_counts(model, source, domain=0)
    target_labels, target_domains = _hit_counts(model, target, domain=1)
    source_size, target_size = max(len(source), 1), max(len(target), 1)
    return {
        "source_accuracy": source_labels / source_size,
        "target_accuracy": target_labels / target_size if target.labelled else None,
        "domain_accuracy": float(
            np.mean([source_domains / source_size, target_domains / target_size])
        ),
    }


def build_network(config: TrainConfig, policy: str = "float32") -> DANN:
    """The network of a run: its domain head reads what the run's method asks for, so
    that evaluation and export rebuild from ``config.json`` the network that trained."""
    return build_model(config, policy, conditional=get_method(config.method).conditional)


def restore_model(run_dir: Path) -> DANN:
    """The model of a run at its latest checkpoint, built from the run's config."""
    config = load_config(run_dir)
    latest = tf.train.latest_checkpoint(str(run_dir / CHECKPOINTS))
    if latest is None:
        raise RunError(f"{run_dir}: no checkpoint in {run_dir / CHECKPOINTS}")
    model = build_network(config)
    # The averaged weights are the run's model (see Trainer); the raw ones only
    # matter to --resume.
    if not any(name.startswith("averaged/") for name, _ in tf.train.list_variables(latest)):
        raise RunError(f"{latest}: holds no averaged weights (not a dann-serve checkpoint?)")
    tf.train.Checkpoint(averaged=model).restore(latest).expect_partial()
    return model


def evaluate_run(
    run_dir: Path, dataset: str, split: str = "test", data_dir: str | Path | None = None
) -> dict:
    """A run's latest checkpoint on ``dataset``'s ``split`` (a data set or a folder): its
    label accuracy (None without labels) and the label-free figures."""
    model = restore_model(Path(run_dir))
    chosen = data.load_split(dataset, data_dir, split)
    figures = label_free_figures(model, chosen)
    return {"accuracy": accuracy(model, chosen) if chosen.labelled else None, **figures}

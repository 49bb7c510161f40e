"""The training loop: one tf.function step for DANN and source-only alike.

Source-only is DANN with lambda held at 0: the same network, data stream, batch
composition, optimiser and schedule, so the baseline differs from DANN in exactly
one thing, the reversed domain gradient reaching the features. The domain head
still trains in both modes, which makes its accuracy a fair readout of how
separable the two domains' features are.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dann_client.contract import NUM_CLASSES
from dann_serve import data
from dann_serve.config import TrainConfig
from dann_serve.data import Domain
from dann_serve.data.pipeline import paired_batches, to_unit_range
from dann_serve.files import write_json
from dann_serve.model.networks import build_model
from dann_serve.runtime import package_versions
from dann_serve.training.augment import random_shift
from dann_serve.training.evaluation import label_free_figures, pair_accuracies
from dann_serve.training.losses import (
    domain_loss,
    entropies,
    information_loss,
    label_loss,
    source_class_weights,
)
from dann_serve.training.plots import plot_curves
from dann_serve.training.rundir import CHECKPOINTS, MetricsLog, RunError, load_config, read_metrics
from dann_serve.training.schedules import AdaptationSchedule, AnnealedLearningRate, progress


class Trainer:
    """Holds the model, optimiser, schedules and data stream of one run.

    Everything that determines the next step (weights, optimiser slots and step
    counter, the data iterator's position) is tracked by one tf.train.Checkpoint,
    so a resumed run continues exactly where the saved one stopped.
    """

    def __init__(self, config: TrainConfig, source: Domain, target: Domain) -> None:
        self.config = config
        self.source = source
        self.target = target
        keras.utils.set_random_seed(config.seed)
        self.model = build_model(config)
        # The model a run reports, checkpoints for serving and exports is the moving
        # average of the trained weights: the adversarial game makes the weights
        # orbit, and a single step's weights are one arbitrary point of that orbit.
        self.averaged = build_model(config)
        self.averaged.set_weights(self.model.get_weights())
        self.learning_rate = AnnealedLearningRate(
            config.learning_rate, config.steps, config.lr_alpha, config.lr_beta
        )
        self.optimizer = keras.optimizers.SGD(
            self.learning_rate,
            momentum=config.momentum,
            weight_decay=config.weight_decay or None,
            global_clipnorm=config.clip_norm or None,
        )
        self.optimizer.build(self.model.trainable_variables)
        self.adaptation = AdaptationSchedule(
            config.gamma, config.lambda_max if config.mode == "dann" else 0.0
        )
        stream = paired_batches(source.train, target.train, config.batch_size, config.seed)
        self.iterator = iter(stream)
        self.label_loss = keras.metrics.Mean()
        self.domain_loss = keras.metrics.Mean()
        half = config.batch_size // 2
        self.domain_labels = tf.concat([tf.zeros(half, tf.int64), tf.ones(half, tf.int64)], axis=0)
        self.source_share = tf.constant(_class_shares(source.train.labels), tf.float32)
        # The target's class proportions as the model currently predicts them: a slow
        # moving average, starting from the source's, of the mean target softmax.
        self.target_share = tf.Variable(self.source_share, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=self.model,
            averaged=self.averaged,
            optimizer=self.optimizer,
            data=self.iterator,
            target_share=self.target_share,
        )

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def current_lambda(self) -> float:
        return float(self.adaptation(progress(self.step, self.config.steps)))

    def current_learning_rate(self) -> float:
        return float(self.learning_rate(self.optimizer.iterations))

    @tf.function
    def train_step(self) -> None:
        (xs, ys), (xt, _) = next(self.iterator)
        images = to_unit_range(tf.concat([xs, xt], axis=0))
        if self.config.augment:
            images = random_shift(images, self.config.seed, self.optimizer.iterations)
        lambda_ = self.adaptation(progress(self.optimizer.iterations, self.config.steps))
        self.model.reversal.lambda_.assign(lambda_)
        with tf.GradientTape() as tape:
            label_logits, domain_logits = self.model(images, training=True)
            half = tf.shape(xs)[0]
            source_loss = label_loss(ys, label_logits[:half])
            weights = self._domain_weights(ys, label_logits)
            adversarial = domain_loss(self.domain_labels, domain_logits, weights)
            loss = source_loss + adversarial
            if self.config.information_weight:
                # Ramped like lambda (lambda / lambda_max): a random classifier's
                # confident guesses would otherwise be reinforced from step 0.
                ramp = lambda_ / self.config.lambda_max if self.config.lambda_max else 0.0
                information = information_loss(label_logits[half:])
                loss += self.config.information_weight * ramp * information
        variables = self.model.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self._update_average()
        self._update_target_share(label_logits[half:])
        self.label_loss.update_state(source_loss)
        self.domain_loss.update_state(adversarial)

    def _domain_weights(
        self, source_labels: tf.Tensor, label_logits: tf.Tensor
    ) -> tf.Tensor | None:
        """Each image's weight in the domain loss, None for all 1: with
        ``class_weighting`` source images weigh their class ratio; with ``conditional``
        (CDAN+E) every image weighs 1 + exp(-entropy of its prediction), so that the
        uncertain predictions, whose conditioning says little, count less."""
        weights = None
        if self.config.class_weighting:
            source = source_class_weights(source_labels, self.target_share, self.source_share)
            weights = tf.concat([source, tf.ones_like(source)], axis=0)
        if self.config.conditional:
            certainty = 1.0 + tf.exp(-tf.stop_gradient(entropies(label_logits)))
            weights = certainty if weights is None else weights * certainty
        return weights

    def _update_target_share(self, target_logits: tf.Tensor) -> None:
        batch_share = tf.reduce_mean(tf.nn.softmax(tf.stop_gradient(target_logits)), axis=0)
        self.target_share.assign(0.99 * self.target_share + 0.01 * batch_share)

    def _update_average(self) -> None:
        """averaged <- d * averaged + (1 - d) * trained, with d ramping up early on.

        The ramp d_t = min(decay, (1 + t) / (10 + t)) keeps the first steps from
        dragging the random initial weights along for hundreds of steps.
        """
        if self.config.average_decay == 0.0:
            decay = tf.constant(0.0)
        else:
            t = tf.cast(self.optimizer.iterations, tf.float32)
            decay = tf.minimum(self.config.average_decay, (1.0 + t) / (10.0 + t))
        for average, value in zip(self.averaged.weights, self.model.weights, strict=True):
            average.assign(decay * average + (1.0 - decay) * value)

    def measure(self) -> dict[str, float]:
        """The metrics row logged every ``eval_every`` steps; resets the loss means."""
        row = {
            "step": self.step,
            "label_loss": float(self.label_loss.result()),
            "domain_loss": float(self.domain_loss.result()),
            "lambda": self.current_lambda(),
            "learning_rate": self.current_learning_rate(),
            **pair_accuracies(self.averaged, self.source.test, self.target.test),
        }
        self.label_loss.reset_state()
        self.domain_loss.reset_state()
        if not math.isfinite(row["label_loss"]) and row["step"] > 0:
            raise FloatingPointError(f"label loss became {row['label_loss']} at step {self.step}")
        return row


def _class_shares(labels) -> list[float]:
    counts = np.bincount(np.asarray(labels, np.int64), minlength=NUM_CLASSES).astype(float)
    return list(counts / max(counts.sum(), 1.0))


def load_pair(config: TrainConfig, progress: bool = False) -> tuple[Domain, Domain]:
    """The run's two domains, each big enough to fill its half of a batch."""
    pair = []
    for role, spec, test in (
        ("source", config.source, config.source_test),
        ("target", config.target, config.target_test),
    ):
        domain = data.load_domain(
            spec,
            config.data_dir,
            test,
            role=role,
            skip_unreadable=config.skip_unreadable,
            progress=progress,
        )
        if len(domain.train) < config.batch_size // 2:
            raise data.DatasetError(
                f"{spec}: {len(domain.train)} training images, fewer than the "
                f"{config.batch_size // 2} of one batch's {role} half (--batch-size "
                f"{config.batch_size})"
            )
        pair.append(domain)
    return pair[0], pair[1]


def train_run(
    config: TrainConfig, run_dir: Path, resume: bool = False, show_progress: bool = True
) -> dict:
    """Train (or continue) the run in ``run_dir`` and return its summary."""
    run_dir = Path(run_dir)
    config, has_checkpoint = _check_run_dir(config, run_dir, resume)
    # Before mkdir: bad data leaves no empty run behind.
    source, target = load_pair(config, progress=show_progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, source, target)
    manager = tf.train.CheckpointManager(
        trainer.checkpoint, str(run_dir / CHECKPOINTS), max_to_keep=3
    )
    if resume and has_checkpoint:
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    write_json(run_dir / "config.json", _run_record(config, source, target))
    # A run resumed at step 0 (killed before its first checkpoint) logs step 0 again.
    kept = trainer.step if trainer.step > 0 else -1
    _train(trainer, manager, MetricsLog(run_dir, keep_up_to_step=kept), show_progress)
    return _finish(config, run_dir, _target_figures(trainer))


def _check_run_dir(config: TrainConfig, run_dir: Path, resume: bool) -> tuple[TrainConfig, bool]:
    """The options to train with (the saved ones when resuming) and whether a checkpoint
    exists; ``RunError`` for nothing to resume, or a run in the way of a new one."""
    has_checkpoint = tf.train.latest_checkpoint(str(run_dir / CHECKPOINTS)) is not None
    if resume:
        if not (run_dir / "config.json").exists():
            raise RunError(f"{run_dir}: nothing to resume (no config.json, no checkpoint)")
        # Without a checkpoint (killed before the first one) the run starts over from
        # step 0 with its saved options: nothing of it was kept, so nothing is lost.
        # Only where the data lies may change (the files moved, the same data).
        saved = load_config(run_dir)
        return dataclasses.replace(
            saved, data_dir=config.data_dir or saved.data_dir
        ), has_checkpoint
    if has_checkpoint or (run_dir / "config.json").exists():
        raise RunError(
            f"{run_dir}: a run already exists there; pass --resume to continue it "
            "or choose another --out"
        )
    return config, has_checkpoint


def _run_record(config: TrainConfig, source: Domain, target: Domain) -> dict:
    """config.json: the options, the package versions and the data of the run."""

    def described(domain: Domain) -> dict:
        return {
            "name": domain.name,
            "train": len(domain.train),
            "test": len(domain.test),
            "test_labelled": domain.test.labelled,
            "note": domain.note,
            "skipped": list(domain.skipped),
        }

    return {
        "options": {**vars(config)},
        "versions": package_versions(),
        "data": {"source": described(source), "target": described(target)},
    }


def _train(
    trainer: Trainer, manager: tf.train.CheckpointManager, metrics: MetricsLog, show: bool
) -> None:
    """Step until ``config.steps``, measuring and checkpointing every ``eval_every``
    steps (and at the last); an interruption saves a checkpoint first."""
    config = trainer.config
    if trainer.step == 0:
        metrics.log(trainer.measure())
    bar = tqdm(
        total=config.steps,
        initial=trainer.step,
        disable=not show,
        desc=f"{config.mode} {config.source}->{config.target}",
        unit="step",
        dynamic_ncols=True,
    )
    try:
        while trainer.step < config.steps:
            trainer.train_step()
            bar.update(1)
            step = trainer.step
            if step % config.eval_every == 0 or step == config.steps:
                row = trainer.measure()
                metrics.log(row)
                manager.save(checkpoint_number=step)
                bar.set_postfix(
                    loss=f"{row['label_loss']:.3f}",
                    src=f"{row['source_accuracy']:.3f}",
                    tgt=_shown(row["target_accuracy"]),
                    dom=f"{row['domain_accuracy']:.2f}",
                )
    except KeyboardInterrupt:
        manager.save(checkpoint_number=trainer.step)
        raise
    finally:
        bar.close()
        metrics.close()


def _target_figures(trainer: Trainer) -> dict:
    """Whether the target's accuracy is known, and what is known of it without labels."""
    test = trainer.target.test
    return {
        "target_labels": test.labelled,
        "target_label_free": label_free_figures(trainer.averaged, test),
    }


def _finish(config: TrainConfig, run_dir: Path, target_figures: dict) -> dict:
    """summary.json and the curves, from the metrics of the finished run."""
    rows = read_metrics(run_dir / "metrics.csv", config.steps)
    final = rows[-1]
    summary = {
        "step": int(final["step"]),
        "mode": config.mode,
        "source": config.source,
        "target": config.target,
        "arch": config.arch,
        "seed": config.seed,
        "source_test_accuracy": float(final["source_accuracy"]),
        "target_test_accuracy": _number(final["target_accuracy"]),
        "domain_accuracy": float(final["domain_accuracy"]),
        **target_figures,
    }
    write_json(run_dir / "summary.json", summary)
    plot_curves(rows, run_dir)
    return summary


def _number(text: str) -> float | None:
    """A metrics.csv value; an empty cell (no labels to measure against) is None."""
    return float(text) if text not in ("", None) else None


def _shown(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3f}"

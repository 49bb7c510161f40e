"""The training loop: one tf.function step for DANN and source-only alike.

Source-only is DANN with lambda held at 0: the same network, data stream, batch
composition, optimiser and schedule, so the baseline differs from DANN in exactly
one thing, the reversed domain gradient reaching the features. The domain head
still trains in both modes, which makes its accuracy a fair readout of how
separable the two domains' features are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dann_client.contract import NUM_CLASSES
from dann_serve import data
from dann_serve.config import TrainConfig
from dann_serve.data import Domain
from dann_serve.data.pipeline import paired_batches
from dann_serve.files import write_json
from dann_serve.model.networks import build_model
from dann_serve.training.augment import training_batches
from dann_serve.training.distribute import Placement, placement
from dann_serve.training.evaluation import label_free_figures, pair_accuracies
from dann_serve.training.losses import (
    Replicas,
    domain_loss,
    entropies,
    information_loss,
    label_loss,
    mean_prediction,
    source_class_weights,
)
from dann_serve.training.plots import plot_curves
from dann_serve.training.rundir import (
    CHECKPOINTS,
    MetricsLog,
    check_run_dir,
    read_json,
    read_metrics,
    run_record,
)
from dann_serve.training.schedules import AdaptationSchedule, AnnealedLearningRate, progress


class Trainer:
    """Holds the model, optimiser, schedules and data stream of one run.

    Everything that determines the next step (weights, optimiser slots and step
    counter, the data iterator's position) is tracked by one tf.train.Checkpoint,
    so a resumed run continues exactly where the saved one stopped.
    """

    def __init__(
        self,
        config: TrainConfig,
        source: Domain,
        target: Domain,
        place: Placement | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.target = target
        self.place = place or Placement()
        keras.utils.set_random_seed(config.seed)
        with self.place.scope():
            self._build_state(config)
        # One global stream on every worker: each replica slices its share of a batch.
        pairs = paired_batches(source.train, target.train, config.batch_size, config.seed)
        self.iterator = iter(training_batches(pairs, config.seed, config.augment))
        self.label_loss = keras.metrics.Mean()
        self.domain_loss = keras.metrics.Mean()
        self.checkpoint = tf.train.Checkpoint(
            model=self.model,
            averaged=self.averaged,
            optimizer=self.optimizer,
            data=self.iterator,
            target_share=self.target_share,
        )

    def _build_state(self, config: TrainConfig) -> None:
        """The variables: models, optimiser, class shares (under the strategy's scope)."""
        self.model = build_model(config, config.precision)
        # The model a run reports, checkpoints for serving and exports is the moving
        # average of the trained weights: the adversarial game makes the weights
        # orbit, and a single step's weights are one arbitrary point of that orbit.
        self.averaged = build_model(config)
        self.averaged.set_weights(self.model.get_weights())
        self.learning_rate = AnnealedLearningRate(
            config.learning_rate, config.steps, config.lr_alpha, config.lr_beta
        )
        # Gradients are clipped by the step, after the replicas' gradients are summed
        # (a Keras optimiser would clip each replica's part).
        self.optimizer = keras.optimizers.SGD(
            self.learning_rate,
            momentum=config.momentum,
            weight_decay=config.weight_decay or None,
        )
        self.optimizer.build(self.model.trainable_variables)
        self.adaptation = AdaptationSchedule(
            config.gamma, config.lambda_max if config.mode == "dann" else 0.0
        )
        self.source_share = tf.constant(_class_shares(self.source.train.labels), tf.float32)
        # The target's class proportions as the model currently predicts them: a slow
        # moving average, starting from the source's, of the mean target softmax.
        # Every replica computes the same global value; the first one's is kept.
        self.target_share = tf.Variable(
            self.source_share,
            trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
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
        (xs, ys), (xt, _) = next(self.iterator)  # the global batch
        lambda_ = self.adaptation(progress(self.optimizer.iterations, self.config.steps))
        self.model.reversal.lambda_.assign(lambda_)
        source_loss, adversarial = self.place.run(self._replica_step, (xs, ys, xt, lambda_))
        self._update_average()
        self.label_loss.update_state(source_loss)
        self.domain_loss.update_state(adversarial)

    def _replica_step(
        self, xs: tf.Tensor, ys: tf.Tensor, xt: tf.Tensor, lambda_: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """One replica's share of a step: its slice of each half of the global batch,
        its part of the loss; returns its parts of the label and domain losses."""
        replicas = self.place.share
        half = self.config.batch_size // 2
        first, size = self.place.slice_of(half)
        xs, ys, xt = xs[first : first + size], ys[first : first + size], xt[first : first + size]
        images = tf.concat([xs, xt], axis=0)
        domains = tf.concat([tf.zeros(size, tf.int64), tf.ones(size, tf.int64)], axis=0)
        with tf.GradientTape() as tape:
            label_logits, domain_logits = self.model(images, training=True)
            # Losses, softmax and the reversal's weighting in float32 whatever the policy.
            label_logits = tf.cast(label_logits, tf.float32)
            domain_logits = tf.cast(domain_logits, tf.float32)
            source_loss = label_loss(ys, label_logits[:size], replicas)
            weights = self._domain_weights(ys, label_logits)
            adversarial = domain_loss(domains, domain_logits, weights, replicas)
            loss = source_loss + adversarial
            if self.config.information_weight:
                # Ramped like lambda (lambda / lambda_max): a random classifier's
                # confident guesses would otherwise be reinforced from step 0.
                ramp = lambda_ / self.config.lambda_max if self.config.lambda_max else 0.0
                information = information_loss(label_logits[size:], replicas)
                loss += self.config.information_weight * ramp * information
        variables = self.model.trainable_variables
        gradients = self._clipped(tape.gradient(loss, variables), replicas)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self._update_target_share(label_logits[size:], replicas)
        return source_loss, adversarial

    def _clipped(self, gradients: list[tf.Tensor], replicas: Replicas) -> list[tf.Tensor]:
        """The replica's gradients, the sum of all replicas' clipped to ``clip_norm``
        and shared out again (the optimiser sums them)."""
        if not self.config.clip_norm:
            return gradients
        total = replicas.total(gradients)
        clipped, _ = tf.clip_by_global_norm(total, self.config.clip_norm)
        if replicas.count == 1:
            return clipped
        return [gradient / replicas.count for gradient in clipped]

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

    def _update_target_share(self, target_logits: tf.Tensor, replicas: Replicas) -> None:
        batch_share = mean_prediction(tf.stop_gradient(target_logits), replicas)
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
        self.place.update(
            self.averaged.weights,
            self.model.weights,
            lambda average, value: decay * average + (1.0 - decay) * value,
        )

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


def train_or_reuse(config: TrainConfig, run_dir: Path, show_progress: bool = True) -> dict:
    """The summary of the run in ``run_dir``: read back if it finished, resumed if it
    was started, trained otherwise. Commands that train many runs (``compare``,
    ``train --select``) go through this, so that starting them again picks up where
    they stopped."""
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").exists():
        return read_json(run_dir / "summary.json")
    resume = (run_dir / "config.json").exists()
    return train_run(config, run_dir, resume=resume, show_progress=show_progress)


def train_run(
    config: TrainConfig, run_dir: Path, resume: bool = False, show_progress: bool = True
) -> dict:
    """Train (or continue) the run in ``run_dir`` and return its summary (on a worker
    of a multi-worker run that is not the chief: only the step and the task)."""
    run_dir = Path(run_dir)
    place = placement(config)  # first: TensorFlow's devices and cluster are fixed at start
    config = check_run_dir(config, run_dir, resume, place.chief)
    # Before mkdir: bad data leaves no empty run behind.
    source, target = load_pair(config, progress=show_progress and place.chief)
    trainer = Trainer(config, source, target, place)
    latest = tf.train.latest_checkpoint(str(run_dir / CHECKPOINTS))
    if resume and latest:  # every worker restores the chief's checkpoint
        trainer.checkpoint.restore(latest).assert_existing_objects_matched()
    with place.checkpoint_directory(run_dir) as (directory, keep):
        manager = tf.train.CheckpointManager(trainer.checkpoint, str(directory), keep)

        def save(step: int) -> None:
            manager.save(checkpoint_number=step)
            place.discard(directory)

        if not place.chief:
            with place.peers_watched():
                _train(trainer, save, None, show=False)
            return {"step": trainer.step, "task": place.task, "chief": False}
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", run_record(config, source, target, place.describe()))
        # A run resumed at step 0 (killed before its first checkpoint) logs step 0 again.
        kept = trainer.step if trainer.step > 0 else -1
        with place.peers_watched():
            _train(trainer, save, MetricsLog(run_dir, keep_up_to_step=kept), show_progress)
    return _finish(config, run_dir, _target_figures(trainer))


def _train(
    trainer: Trainer, save: Callable[[int], None], metrics: MetricsLog | None, show: bool
) -> None:
    """Step until ``config.steps``, measuring (where there is a ``metrics`` log: the
    chief) and checkpointing every ``eval_every`` steps and at the last; an
    interruption saves a checkpoint first."""
    config = trainer.config
    if trainer.step == 0 and metrics:
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
                if metrics:
                    row = trainer.measure()
                    metrics.log(row)
                    bar.set_postfix(
                        loss=f"{row['label_loss']:.3f}",
                        src=f"{row['source_accuracy']:.3f}",
                        tgt=_shown(row["target_accuracy"]),
                        dom=f"{row['domain_accuracy']:.2f}",
                    )
                save(step)
    except KeyboardInterrupt:
        save(trainer.step)
        raise
    finally:
        bar.close()
        if metrics:
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

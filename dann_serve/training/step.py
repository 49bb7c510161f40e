"""The training step: one tf.function for every adaptation method.

Every method trains the same network on the same batches with the same optimiser
and schedules; the run's method (:mod:`dann_serve.training.methods`) says what the
domain head reads, how strongly its reversed gradient reaches the features, how
each image weighs in the domain loss and what else the loss holds. The step knows
no method by name.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from dann_client.contract import NUM_CLASSES
from dann_serve.config import TrainConfig
from dann_serve.data import Domain
from dann_serve.data.pipeline import paired_batches
from dann_serve.training.augment import ShiftSchedule, step_seed, training_batches
from dann_serve.training.distribute import Placement
from dann_serve.training.evaluation import build_network, pair_accuracies
from dann_serve.training.losses import (
    Replicas,
    domain_loss,
    information_loss,
    label_loss,
    mean_prediction,
)
from dann_serve.training.methods import Batch, get_method
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
        self.method = get_method(config.method)
        keras.utils.set_random_seed(config.seed)
        with self.place.scope():
            self._build_state(config)
        # One global stream on every worker: each replica slices its share of a batch.
        pairs = paired_batches(source.train, target.train, config.batch_size, config.seed)
        shifts = ShiftSchedule.of(config)
        batches = training_batches(pairs, config.seed, shifts, self.method.augment_source)
        self.iterator = iter(batches)
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
        self.model = build_network(config, config.precision)
        # The model a run reports, checkpoints for serving and exports is the moving
        # average of the trained weights: the adversarial game makes the weights
        # orbit, and a single step's weights are one arbitrary point of that orbit.
        self.averaged = build_network(config)
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
        if config.precision == "mixed_float16":
            # float16 gradients underflow: the loss is scaled up before the backward pass
            # and the gradients scaled down before the update; a step whose scaled
            # gradients overflow is skipped and the scale halved (Keras' dynamic scaling).
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        self.optimizer.build(self.model.trainable_variables)
        self.strength = self.method.reversal_strength(config.lambda_max)
        self.adaptation = AdaptationSchedule(config.gamma, self.strength)
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

    # Traced as written: AutoGraph's rewrite of the step and every hook it calls took
    # longer than the run's first 30 steps, and nothing here branches on a tensor.
    @tf.function(autograph=False)
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
            batch = Batch(
                ys,
                label_logits,
                size,
                replicas,
                self.source_share,
                self.target_share,
                images=images,
                classify=self._classify,
                seed=step_seed(self.config.seed, self.optimizer.iterations),
            )
            source_loss = label_loss(ys, label_logits[:size], replicas)
            weights = self.method.domain_weights(batch)
            adversarial = domain_loss(domains, domain_logits, weights, replicas)
            loss = source_loss + adversarial
            if self.config.information_weight and self.strength:
                # Ramped like lambda (lambda / its largest value): a random classifier's
                # confident guesses would otherwise be reinforced from step 0. A method
                # without a reversal (source-only) has no ramp: the term is off.
                ramp = lambda_ / self.strength
                information = information_loss(batch.target_logits, replicas)
                loss += self.config.information_weight * ramp * information
            extra = self.method.extra_loss(batch)
            if extra is not None:
                loss += extra
            scale = self._loss_scale()
            loss *= scale
        variables = self.model.trainable_variables
        gradients = self._clipped(tape.gradient(loss, variables), replicas, scale)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self._update_target_share(label_logits[size:], replicas)
        return source_loss, adversarial

    def _classify(self, images: tf.Tensor) -> tf.Tensor:
        """Float32 label logits of the network being trained, in training mode: what a
        method's term reads of images of its own (:attr:`Batch.classify`)."""
        features = self.model.features(images, training=True)
        return tf.cast(self.model.label_head(features, training=True), tf.float32)

    @property
    def _scales_loss(self) -> bool:
        """Whether the loss is scaled before the backward pass (float16 only)."""
        return isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)

    def _loss_scale(self) -> tf.Tensor | float:
        """What the loss is multiplied by before the backward pass: 1 but in float16."""
        return self.optimizer.scale_loss(1.0) if self._scales_loss else 1.0

    def _clipped(
        self, gradients: list[tf.Tensor], replicas: Replicas, scale: tf.Tensor | float = 1.0
    ) -> list[tf.Tensor]:
        """The replica's gradients, the sum of all replicas' clipped to ``clip_norm``
        (times the loss ``scale`` they carry) and shared out again (the optimiser sums
        them). Under loss scaling every replica passes that same share, so that all of
        them agree on whether the step's gradients are finite."""
        if not self.config.clip_norm and not (self._scales_loss and replicas.count > 1):
            return gradients
        total = replicas.total(gradients)
        if self.config.clip_norm:
            total, _ = tf.clip_by_global_norm(total, self.config.clip_norm * scale)
        if replicas.count == 1:
            return total
        return [gradient / replicas.count for gradient in total]

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

    def measure(self) -> dict[str, float | None]:
        """The metrics row logged every ``eval_every`` steps; resets the loss means."""
        label_loss = float(self.label_loss.result())
        row = {
            "step": self.step,
            "label_loss": label_loss,
            "domain_loss": float(self.domain_loss.result()),
            "lambda": self.current_lambda(),
            "learning_rate": self.current_learning_rate(),
            **pair_accuracies(self.averaged, self.source.test, self.target.test),
        }
        self.label_loss.reset_state()
        self.domain_loss.reset_state()
        if not math.isfinite(label_loss) and self.step > 0:
            raise FloatingPointError(f"label loss became {label_loss} at step {self.step}")
        return row


def _class_shares(labels) -> list[float]:
    counts = np.bincount(np.asarray(labels, np.int64), minlength=NUM_CLASSES).astype(float)
    return list(counts / max(counts.sum(), 1.0))

"""The terms of a training step's loss, each a plain function of logits.

DANN's objective is the label loss on source images plus the domain loss the
gradient reversal turns adversarial. Two optional terms act on the target's label
predictions and need no target label:

- information maximisation (Hu et al. 2017; used by SHOT, Liang et al. 2020): each
  target prediction confident (low entropy), the batch's predictions spread over
  the classes (high entropy of their mean), so that the classifier's boundaries
  leave the dense regions of the target instead of cutting through them;
- class weighting of the domain loss (importance-weighted alignment, Combes et al.
  NeurIPS 2020): when the domains' class proportions differ, aligning the whole
  feature distributions forces some target classes onto the wrong source class.
  Weighting each source image by the ratio of the target's estimated class share
  to the source's aligns the target with a source resampled to its proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class Replicas:
    """How many replicas share a step's global batch, each an equal slice of it.

    Every term below returns *this replica's part* of the global-batch loss, so that
    the parts summed over the replicas (which the optimiser does to their gradients)
    are the loss one device computes on the whole batch: per-image terms are this
    replica's sum divided by the global count; terms of a batch statistic (a weight
    total, the mean prediction) read the statistic summed over all replicas. With one
    replica every term is the plain batch mean.
    """

    count: int = 1

    def total(self, value: tf.Tensor) -> tf.Tensor:
        """``value`` summed over the replicas. Differentiable: the gradient of an
        all-reduced sum is the all-reduced sum of the gradients."""
        if self.count == 1:
            return value
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value)

    def mean(self, values: tf.Tensor) -> tf.Tensor:
        """This replica's part of the global batch's mean of per-image ``values``."""
        if self.count == 1:
            return tf.reduce_mean(values)
        rows = tf.cast(tf.shape(values)[0] * self.count, values.dtype)
        return tf.reduce_sum(values) / rows


ONE = Replicas()


def label_loss(labels: tf.Tensor, logits: tf.Tensor, replicas: Replicas = ONE) -> tf.Tensor:
    """Mean cross-entropy of the source images' digit logits."""
    return replicas.mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))


def domain_loss(
    domains: tf.Tensor,
    logits: tf.Tensor,
    weights: tf.Tensor | None = None,
    replicas: Replicas = ONE,
) -> tf.Tensor:
    """Weighted mean cross-entropy of the domain logits (0 = source, 1 = target)."""
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(domains, logits)
    if weights is None:
        return replicas.mean(losses)
    return tf.reduce_sum(weights * losses) / replicas.total(tf.reduce_sum(weights))


def entropies(logits: tf.Tensor) -> tf.Tensor:
    """Entropy (nats) of the softmax of each row: 0 where a row is certain."""
    return -tf.reduce_sum(tf.nn.softmax(logits) * tf.nn.log_softmax(logits), axis=-1)


def prediction_entropy(logits: tf.Tensor, replicas: Replicas = ONE) -> tf.Tensor:
    """Mean entropy (nats) of the rows' softmax."""
    return replicas.mean(entropies(logits))


def mean_prediction(logits: tf.Tensor, replicas: Replicas = ONE) -> tf.Tensor:
    """The global batch's mean softmax: the class shares it predicts."""
    if replicas.count == 1:
        return tf.reduce_mean(tf.nn.softmax(logits), axis=0)
    rows = tf.cast(tf.shape(logits)[0] * replicas.count, logits.dtype)
    return replicas.total(tf.reduce_sum(tf.nn.softmax(logits), axis=0)) / rows


def class_spread(logits: tf.Tensor, replicas: Replicas = ONE) -> tf.Tensor:
    """Entropy (nats) of the batch's mean prediction: ln 10 when classes are even.

    The batch is the global one, so the term and its gradient do not depend on how
    many replicas share it; every replica computes the same value.
    """
    mean = mean_prediction(logits, replicas)
    return -tf.reduce_sum(mean * tf.math.log(mean + 1e-8))


def information_loss(target_logits: tf.Tensor, replicas: Replicas = ONE) -> tf.Tensor:
    """Confident and diverse target predictions: entropy of each minus entropy of all.

    Minimising this alone can collapse every image onto one class; the second term
    is what prevents it, and it is why both are one loss, not two options. The class
    spread, a whole-batch value each replica holds, counts 1 / replicas per replica.
    """
    spread = class_spread(target_logits, replicas)
    return prediction_entropy(target_logits, replicas) - spread / replicas.count


def source_class_weights(
    source_labels: tf.Tensor, target_share: tf.Tensor, source_share: tf.Tensor
) -> tf.Tensor:
    """Per source image, target share / source share of its class, clipped to [0.2, 5]
    so that a class the target seems to lack is down-weighted, never dropped."""
    ratio = target_share / tf.maximum(source_share, 1e-6)
    return tf.gather(tf.clip_by_value(ratio, 0.2, 5.0), source_labels)

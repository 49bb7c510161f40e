"""Minimum Class Confusion (Jin et al., ECCV 2020): target predictions that do not
confuse classes with each other.

No alignment and no reversal: the source cross-entropy, plus a loss read from the
target predictions alone. A classifier trained on the source tends, on the target, to
spread its probability between classes that look alike there; MCC measures how much
the batch's target predictions put on two classes at once, and lowers it:

1. temperature: probabilities ``p = softmax(logits / T)`` with ``T = 2.5``, softer
   than the classifier's own, so that the confusion the overconfident softmax hides
   shows;
2. uncertainty weights: each image weighs ``1 + exp(-H(p_i))`` (``H``: its
   entropy), so that the confident ones, whose confusion says more, count more;
3. class correlation: ``C = p^T W p``, a classes x classes matrix whose entry ``jk``
   is how much the batch predicts classes ``j`` and ``k`` together;
4. category normalisation: each row of ``C`` divided by its sum, so that a class the
   batch predicts often does not outweigh a rare one;
5. the loss: the sum of the off-diagonal entries over the number of classes, from 0
   (no two classes ever predicted together) to ``(classes - 1) / classes``.

The paper scales the weights to sum to the batch size; step 4 divides that scale
out, so it is left out here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dann_serve.training.methods.base import AdaptationMethod, Batch
from dann_serve.training.methods.registry import register

if TYPE_CHECKING:
    import tensorflow as tf

    from dann_serve.training.losses import Replicas

TEMPERATURE = 2.5
WEIGHT = 1.0  # of the class confusion against the source cross-entropy, as in the paper


@register
class MinimumClassConfusion(AdaptationMethod):
    name = "mcc"
    label = "MCC"
    description = (
        "Minimum Class Confusion (Jin et al. 2020): no reversal; target predictions "
        "that confuse no two classes"
    )

    def reversal_strength(self, lambda_max: float) -> float:
        return 0.0

    def extra_loss(self, batch: Batch) -> tf.Tensor:
        return WEIGHT * class_confusion(batch.target_logits, batch.replicas)


def class_confusion(logits: tf.Tensor, replicas: Replicas) -> tf.Tensor:
    """This replica's part of the MCC loss of the global batch of target ``logits``:
    the correlation matrix is summed over the replicas, and its loss, which every
    replica then holds, counts ``1 / replicas`` on each."""
    import tensorflow as tf

    from dann_serve.training.losses import entropies

    scaled = logits / TEMPERATURE
    probabilities = tf.nn.softmax(scaled)
    # How much each image counts: not trained, only read.
    weights = 1.0 + tf.exp(-tf.stop_gradient(entropies(scaled)))
    correlation = replicas.total(
        tf.matmul(probabilities * weights[:, None], probabilities, transpose_a=True)
    )
    normalised = correlation / tf.reduce_sum(correlation, axis=1, keepdims=True)
    classes = tf.cast(tf.shape(normalised)[0], normalised.dtype)
    confusion = (tf.reduce_sum(normalised) - tf.linalg.trace(normalised)) / classes
    return confusion / replicas.count

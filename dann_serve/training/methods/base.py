"""What an adaptation method is: the hooks the training step calls, and what they read.

Every method trains the same network on the same stream of half-source, half-target
batches with the same optimiser and schedules; a method says only how the two
domains are brought together:

- what the domain head reads (:attr:`AdaptationMethod.conditional`): the features
  (DANN), or the features times the class predictions (CDAN). The network is built
  from it, so training, evaluation and export build the same network from the
  ``method`` a run's ``config.json`` names;
- how strongly the reversed domain gradient reaches the features
  (:meth:`AdaptationMethod.reversal_strength`): the largest lambda of the schedule.
  With 0 the domain head still trains, behind a reversal that passes nothing back,
  so its accuracy reads how separable the features are under any method;
- each image's weight in the domain loss (:meth:`AdaptationMethod.domain_weights`);
- terms added to the loss (:meth:`AdaptationMethod.extra_loss`).

The method modules are imported by ``dann-serve --help`` and by the report, which
never load TensorFlow (seconds of start-up): hooks import it when they first run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import tensorflow as tf

    from dann_serve.training.losses import Replicas


@dataclass(frozen=True)
class Batch:
    """One replica's share of a training step, as the hooks see it.

    ``label_logits`` (float32 under any precision) holds the source rows first, then
    as many target rows. Terms follow :class:`dann_serve.training.losses.Replicas`:
    each returns this replica's part of the global batch's value.
    """

    source_labels: tf.Tensor  # int64 [n]
    label_logits: tf.Tensor  # [2n, classes]
    source_count: int  # n
    replicas: Replicas
    source_share: tf.Tensor  # the source's class proportions, from its labels
    target_share: tf.Tensor  # the target's as the model predicts them (a moving average)

    @property
    def source_logits(self) -> tf.Tensor:
        return self.label_logits[: self.source_count]

    @property
    def target_logits(self) -> tf.Tensor:
        return self.label_logits[self.source_count :]


class AdaptationMethod:
    """DANN unless a subclass says otherwise: the domain head reads the features, the
    reversal rises to ``--lambda-max``, every image weighs 1, no extra term.

    A subclass sets :attr:`name` (what ``--method`` takes), :attr:`description` (one
    line for ``--help`` and the report) and overrides the hooks it changes.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    label: ClassVar[str] = ""  # how report tables and legends print it ("" : the name)
    conditional: ClassVar[bool] = False  # the domain head reads features x predictions

    def reversal_strength(self, lambda_max: float) -> float:
        """The largest lambda of the reversal schedule, given ``--lambda-max``."""
        return lambda_max

    def domain_weights(self, batch: Batch) -> tf.Tensor | None:
        """Each image's weight in the domain loss (source rows first); None for all 1."""
        return None

    def extra_loss(self, batch: Batch) -> tf.Tensor | None:
        """A term added, as it is, to this replica's loss; None for none."""
        return None

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
- terms added to the loss (:meth:`AdaptationMethod.extra_loss`), which may apply the
  network being trained to images of their own (:attr:`Batch.classify`), as virtual
  adversarial training does;
- what the source images look like before the step sees them
  (:meth:`AdaptationMethod.augment_source`): a method that trains on a source made
  to look like more domains (domain randomisation) says how, here.

The method modules are imported by ``dann-serve --help`` and by the report, which
never load TensorFlow (seconds of start-up): hooks import it when they first run.
"""

from __future__ import annotations

from collections.abc import Callable
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

    ``images`` are the images the logits were computed from (this replica's, source
    rows first, float32 in ``[0, 1]`` after the batch's shifts and any source
    augmentation), ``classify`` maps images like them to float32 label logits
    through the network being trained, in training mode, and ``seed`` (int64
    ``[2]``: the run's seed and the step) seeds stateless random draws, so that a
    resumed run draws what an uninterrupted one would have. Hand-built batches may
    leave them out.
    """

    source_labels: tf.Tensor  # int64 [n]
    label_logits: tf.Tensor  # [2n, classes]
    source_count: int  # n
    replicas: Replicas
    source_share: tf.Tensor  # the source's class proportions, from its labels
    target_share: tf.Tensor  # the target's as the model predicts them (a moving average)
    images: tf.Tensor | None = None  # [2n, 32, 32, 3]
    classify: Callable[[tf.Tensor], tf.Tensor] | None = None
    seed: tf.Tensor | None = None

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

    def augment_source(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """The source half of a training batch (float32 ``[n, 32, 32, 3]`` in ``[0, 1]``,
        shifted) as the step is to see it; ``seed`` (int64 ``[2]``: the run's seed and
        the step) makes any random draw a function of the step. Labels, the target
        half and evaluation are left alone. Runs on the input pipeline's threads."""
        return images

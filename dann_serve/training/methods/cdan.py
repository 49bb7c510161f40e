"""CDAN+E (Long et al., NeurIPS 2018): domains aligned class by class.

The domain head reads the features times the class predictions (the multilinear
map of :class:`dann_serve.model.layers.MultilinearConditioning`), so that aligning
the domains aligns each class's features rather than the whole cloud, where a
target class may land on the wrong source class. "+E": every image weighs
1 + exp(-entropy of its prediction) in the domain loss, so that uncertain
predictions, whose conditioning says little, count less.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dann_serve.training.methods.base import AdaptationMethod, Batch
from dann_serve.training.methods.registry import register

if TYPE_CHECKING:
    import tensorflow as tf


@register
class ConditionalAdversarial(AdaptationMethod):
    name = "cdan"
    label = "CDAN+E"
    description = "CDAN+E: the domain head conditioned on the class predictions"
    conditional = True

    def domain_weights(self, batch: Batch) -> tf.Tensor:
        import tensorflow as tf

        from dann_serve.training.losses import entropies

        return 1.0 + tf.exp(-tf.stop_gradient(entropies(batch.label_logits)))

"""DANN with class-weighted alignment (importance-weighted, Combes et al. NeurIPS 2020).

When the domains' class proportions differ, aligning the whole feature distributions
forces some target classes onto the wrong source class. Each source image weighs
the target's estimated share of its class over the source's in the domain loss
(:func:`dann_serve.training.losses.source_class_weights`), which aligns the target
with a source resampled to the target's proportions; target images weigh 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dann_serve.training.methods.base import AdaptationMethod, Batch
from dann_serve.training.methods.registry import register

if TYPE_CHECKING:
    import tensorflow as tf


@register
class ClassWeighted(AdaptationMethod):
    name = "dann-cw"
    label = "DANN (class-weighted)"
    description = "DANN with class-weighted alignment, for domains whose class proportions differ"

    def domain_weights(self, batch: Batch) -> tf.Tensor:
        import tensorflow as tf

        from dann_serve.training.losses import source_class_weights

        source = source_class_weights(batch.source_labels, batch.target_share, batch.source_share)
        return tf.concat([source, tf.ones_like(source)], axis=0)

"""Adversarial methods on a source blended onto random colour textures, for
colour-texture targets.

A grey source (USPS, printed fonts) has never shown the network a digit drawn by
inverting a textured, coloured background, which is what a target of digits blended
into photographs (MNIST-M-like) is made of; the reversal must then bridge a gap the
features cannot even represent yet. Here every source image of a training batch is
blended, MNIST-M's way (per channel ``|texture - digit|``), onto its own random
procedural texture (:mod:`dann_serve.training.textures`), drawn from the run's seed
and the step; labels, target images and evaluation are untouched, and the domain
head aligns what remains apart: the features' (``dann-texture``) or, conditioned on
the class predictions, CDAN+E's (``cdan-texture``).

For grey targets it is the wrong tool: it moves the source away from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dann_serve.training.methods.base import AdaptationMethod
from dann_serve.training.methods.cdan import ConditionalAdversarial
from dann_serve.training.methods.registry import register

if TYPE_CHECKING:
    import tensorflow as tf


class TexturedSource(AdaptationMethod):
    """The source augmentation alone, for a method to inherit beside its alignment."""

    def augment_source(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        from dann_serve.training.textures import blend_on_textures

        return blend_on_textures(images, seed)


@register
class TexturedSourceAdversarial(TexturedSource):
    name = "dann-texture"
    label = "DANN (textured source)"
    description = (
        "DANN on source images blended onto random procedural colour textures, "
        "for colour-texture targets"
    )


@register
class TexturedSourceConditional(TexturedSource, ConditionalAdversarial):
    name = "cdan-texture"
    label = "CDAN+E (textured source)"
    description = (
        "CDAN+E on source images blended onto random procedural colour textures, "
        "for colour-texture targets"
    )

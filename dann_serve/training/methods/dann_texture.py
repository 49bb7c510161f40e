"""DANN on a source blended onto random colour textures, for colour-texture targets.

A grey source (USPS, printed fonts) has never shown the network a digit drawn by
inverting a textured, coloured background, which is what a target of digits blended
into photographs (MNIST-M-like) is made of; the reversal must then bridge a gap the
features cannot even represent yet. Here every source image of a training batch is
blended, MNIST-M's way (per channel ``|texture - digit|``), onto its own random
procedural texture (:mod:`dann_serve.training.textures`), drawn from the run's seed
and the step; labels, target images and evaluation are untouched, and DANN aligns
what remains apart.

For grey targets it is the wrong tool: it moves the source away from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dann_serve.training.methods.base import AdaptationMethod
from dann_serve.training.methods.registry import register

if TYPE_CHECKING:
    import tensorflow as tf


@register
class TexturedSourceAdversarial(AdaptationMethod):
    name = "dann-texture"
    label = "DANN (textured source)"
    description = (
        "DANN on source images blended onto random procedural colour textures, "
        "for colour-texture targets"
    )

    def augment_source(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        from dann_serve.training.textures import blend_on_textures

        return blend_on_textures(images, seed)

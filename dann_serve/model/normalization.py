"""The in-graph input normalisation: what the network does to an image before its features.

Three Keras layers at the front of the feature extractor, each removing a cue that
tells the domains apart but says nothing about the digit: colour (:class:`Grayscale`),
polarity (:class:`DarkBackground`), brightness and contrast
(:class:`PerImageStandardization`). Living in the graph, they are exported with the
model, so no client can drift from them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

_FRAME = 3  # border width, in pixels, that tells the background's brightness
_CENTRE = 8  # margin cut off to find the centre, where the digit is


class Grayscale(keras.layers.Layer):
    """RGB -> luminance. Digit identity does not live in colour; the target may be grey."""

    def call(self, images: tf.Tensor) -> tf.Tensor:
        return tf.image.rgb_to_grayscale(images)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], 1)


class DarkBackground(keras.layers.Layer):
    """Inverts an image whose border is brighter than its centre, so ink is always light.

    Printed digits come dark-on-light as often as light-on-dark, handwriting scans
    light-on-dark. Polarity says nothing about the digit, but a ReLU feature
    extractor cannot learn to ignore it: a domain classifier reads it at once, and
    the adversarial game spends itself fighting over it (docs/RESULTS.md).
    """

    def call(self, images: tf.Tensor) -> tf.Tensor:
        border = tf.concat(
            [
                tf.reshape(images[:, :_FRAME], [tf.shape(images)[0], -1]),
                tf.reshape(images[:, -_FRAME:], [tf.shape(images)[0], -1]),
                tf.reshape(images[:, :, :_FRAME], [tf.shape(images)[0], -1]),
                tf.reshape(images[:, :, -_FRAME:], [tf.shape(images)[0], -1]),
            ],
            axis=1,
        )
        centre = images[:, _CENTRE:-_CENTRE, _CENTRE:-_CENTRE]
        flip = tf.reduce_mean(border, axis=1) > tf.reduce_mean(centre, axis=[1, 2, 3])
        return tf.where(flip[:, None, None, None], 1.0 - images, images)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape


class PerImageStandardization(keras.layers.Layer):
    """Scales each image to zero mean and unit variance over its pixels and channels.

    A source of printed digits on random colours and a target of white strokes on
    black differ first of all in brightness and contrast. Those cues say nothing
    about the digit, yet a domain classifier reads them at once; removing them in
    the graph leaves the adversarial game to fight over shapes.
    """

    def call(self, images: tf.Tensor) -> tf.Tensor:
        return tf.image.per_image_standardization(images)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

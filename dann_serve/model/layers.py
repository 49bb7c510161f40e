"""The gradient reversal layer: the whole trick of DANN in one small Keras layer."""

from __future__ import annotations

import keras
import tensorflow as tf


@tf.custom_gradient
def reverse_gradient(x: tf.Tensor, lambda_: tf.Tensor):
    """Identity forward; multiplies the upstream gradient by -lambda backward.

    lambda gets no gradient: it is a schedule, not a parameter.
    """

    def grad(upstream: tf.Tensor):
        return -tf.cast(lambda_, upstream.dtype) * upstream, tf.zeros_like(lambda_)

    return tf.identity(x), grad


class GradientReversal(keras.layers.Layer):
    """Passes features to the domain head and sends back the reversed gradient.

    The feature extractor thus climbs the domain loss the head descends, which is
    what pushes it towards features the two domains share. The current lambda lives
    in a non-trainable variable the training loop sets each step; at inference the
    layer is the identity whatever lambda is, so exported graphs carry no
    training-only behaviour.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lambda_ = self.add_weight(
            name="lambda", shape=(), initializer="zeros", trainable=False
        )

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if not training:
            return inputs
        return reverse_gradient(inputs, self.lambda_)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

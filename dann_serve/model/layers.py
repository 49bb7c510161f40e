"""The gradient reversal layer: the whole trick of DANN in one small Keras layer."""

from __future__ import annotations

import math

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


class MultilinearConditioning(keras.layers.Layer):
    """CDAN's input to the domain head: features x class predictions (Long et al. 2018).

    A domain head that sees only the features aligns the two feature distributions
    as wholes, and can do so while mapping a target class onto the wrong source
    class. Given the outer product of the features with the label head's softmax,
    it compares the domains class by class, which is what the features then align.
    The predictions are held fixed (no gradient), as in the paper's code: the domain
    game shapes the features, not the label head. Above ``max_dims`` joint values
    the product is replaced by the paper's randomized multilinear map, two fixed
    Gaussian projections multiplied element-wise, to keep the head small.
    """

    def __init__(self, label_head: keras.layers.Layer, max_dims: int = 16384, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label_head = label_head
        self.max_dims = max_dims
        self.random_dims = 1024

    def build(self, input_shape: tuple) -> None:
        features, classes = (
            int(input_shape[-1]),
            int(self.label_head.compute_output_shape(input_shape)[-1]),
        )
        self.randomized = features * classes > self.max_dims
        if self.randomized:
            normal = keras.initializers.RandomNormal(seed=0)
            self.feature_map = self.add_weight(
                name="feature_map",
                shape=(features, self.random_dims),
                initializer=normal,
                trainable=False,
            )
            self.class_map = self.add_weight(
                name="class_map",
                shape=(classes, self.random_dims),
                initializer=normal,
                trainable=False,
            )
        self.output_dims = self.random_dims if self.randomized else features * classes

    def call(self, features: tf.Tensor) -> tf.Tensor:
        predictions = tf.stop_gradient(tf.nn.softmax(self.label_head(features)))
        # The logits and the fixed maps are float32 under any policy; the joint values
        # take the features' compute dtype (bfloat16 under mixed_bfloat16), the domain
        # head's.
        predictions = tf.cast(predictions, features.dtype)
        if self.randomized:
            feature_map, class_map = (
                tf.cast(m, features.dtype) for m in (self.feature_map, self.class_map)
            )
            joint = tf.matmul(features, feature_map) * tf.matmul(predictions, class_map)
            return joint / math.sqrt(self.random_dims)
        joint = predictions[:, :, None] * features[:, None, :]
        return tf.reshape(joint, (-1, self.output_dims))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.output_dims)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_dims": self.max_dims}

import numpy as np
import pytest
import tensorflow as tf

from dann_serve.model.layers import GradientReversal


@pytest.mark.parametrize("lambda_", [0.0, 0.3, 1.0, 2.5])
def test_gradient_is_minus_lambda_times_upstream(lambda_: float, rng) -> None:
    layer = GradientReversal()
    layer.lambda_.assign(lambda_)
    x = tf.constant(rng.normal(size=(4, 7)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(4, 7)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    gradient = tape.gradient(y, x, output_gradients=upstream)
    np.testing.assert_allclose(gradient.numpy(), -lambda_ * upstream.numpy(), rtol=1e-6)


def test_lambda_gets_no_gradient_and_is_not_trainable() -> None:
    layer = GradientReversal()
    layer.lambda_.assign(0.7)
    x = tf.ones((2, 3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x, training=True))
    assert layer.trainable_weights == []
    gradient = tape.gradient(y, layer.lambda_)
    # A schedule, not a parameter: no gradient may flow into lambda.
    assert gradient is None or not np.any(gradient.numpy())


def test_inference_passes_gradient_unchanged() -> None:
    """Exported graphs must not reverse anything: outside training it is the identity."""
    layer = GradientReversal()
    layer.lambda_.assign(1.0)
    x = tf.ones((2, 3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x, training=False))
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), np.ones((2, 3)))

"""The optional adaptation terms: what each one rewards, and what reaches which weights."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.model.layers import MultilinearConditioning
from dann_serve.training.evaluation import build_network
from dann_serve.training.losses import domain_loss, information_loss, source_class_weights

CONFIDENT = 12.0  # a logit margin that makes a softmax nearly one-hot


def _one_hot_logits(classes: list[int]) -> tf.Tensor:
    return tf.constant(np.eye(10, dtype=np.float32)[classes] * CONFIDENT)


def test_information_loss_prefers_confident_and_spread_predictions() -> None:
    spread = information_loss(_one_hot_logits(list(range(10)) * 2))
    collapsed = information_loss(_one_hot_logits([3] * 20))  # confident, one class
    unsure = information_loss(tf.zeros((20, 10)))  # spread, not confident
    assert spread < collapsed and spread < unsure
    assert float(spread) == pytest.approx(-np.log(10), abs=0.02)


def test_class_weights_follow_the_ratio_of_shares_within_bounds() -> None:
    source_share = tf.constant([0.1] * 10)
    target_share = tf.constant([0.2, 0.05, 0.0001, 0.6] + [0.02] * 6)
    weights = source_class_weights(tf.constant([0, 1, 2, 3]), target_share, source_share)
    np.testing.assert_allclose(weights.numpy(), [2.0, 0.5, 0.2, 5.0], rtol=1e-5)


def test_weighted_domain_loss_is_the_weighted_mean() -> None:
    logits = tf.constant([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    domains = tf.constant([0, 0, 1])
    each = tf.nn.sparse_softmax_cross_entropy_with_logits(domains, logits).numpy()
    weights = tf.constant([1.0, 3.0, 0.0])
    assert float(domain_loss(domains, logits, weights)) == pytest.approx(
        (each[0] + 3 * each[1]) / 4
    )
    assert float(domain_loss(domains, logits)) == pytest.approx(each.mean())


@pytest.mark.parametrize("max_dims, randomized", [(16384, False), (100, True)])
def test_conditioning_shapes_and_fixed_predictions(max_dims: int, randomized: bool) -> None:
    head = tf.keras.Sequential([tf.keras.layers.Dense(10)])
    layer = MultilinearConditioning(head, max_dims=max_dims)
    features = tf.random.normal((4, 12))
    head.build((None, 12))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        joint = layer(features)
        total = tf.reduce_sum(joint)
    assert layer.randomized is randomized
    assert joint.shape == (4, 1024 if randomized else 120)
    # The domain game reaches the features, never the label head's weights.
    assert tape.gradient(total, features) is not None
    assert all(g is None for g in tape.gradient(total, head.trainable_variables))


def test_a_conditional_model_answers_both_heads_from_one_pass() -> None:
    model = build_network(TrainConfig(method="cdan"))  # the method conditions the head
    assert isinstance(model.domain_head.layers[0], MultilinearConditioning)
    images = tf.random.uniform((3, 32, 32, 3))
    label_logits, domain_logits = model(images, training=False)
    assert label_logits.shape == (3, 10) and domain_logits.shape == (3, 2)
    # classify_domain runs the domain head on the features alone: same answer.
    features = model.features(images, training=False)
    np.testing.assert_allclose(model.domain_head(features).numpy(), domain_logits.numpy(), 1e-5)

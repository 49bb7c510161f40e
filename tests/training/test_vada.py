"""VADA as a method: its virtual adversarial perturbation has the radius it promises
and moves a classifier's prediction far more than a random one of that size, its term
is this replica's part of the global batch's, and it trains through the ordinary entry
point with the network applied to images of its own."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.training.losses import ONE, Replicas
from dann_serve.training.methods import Batch, get_method
from dann_serve.training.methods.vada import (
    EPSILON,
    NOISE_STREAM,
    adversarial_perturbation,
    divergences,
    virtual_adversarial_divergences,
)

SEED = tf.constant([0, 3], tf.int64)


@pytest.fixture(scope="module")
def classify():
    """A small nonlinear classifier of 32x32x3 images, its weights fixed by a seed."""
    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(32, activation="tanh"),
            tf.keras.layers.Dense(10),
        ]
    )
    model.build((None, 32, 32, 3))
    return lambda images: 4.0 * model(images)


@pytest.fixture(scope="module")
def images() -> tf.Tensor:
    return tf.random.stateless_uniform([12, 32, 32, 3], seed=[5, 6])


def test_the_perturbation_has_norm_epsilon_and_moves_the_prediction_most(classify, images):
    logits = classify(images)
    r_adv = adversarial_perturbation(classify, images, logits, SEED).numpy()
    np.testing.assert_allclose(np.linalg.norm(r_adv.reshape(12, -1), axis=1), EPSILON, rtol=1e-5)
    adversarial = divergences(logits, classify(images + r_adv)).numpy()
    noise = tf.random.stateless_normal(images.shape, seed=[7, 8])
    random = EPSILON * tf.math.l2_normalize(noise, axis=[1, 2, 3])
    by_chance = divergences(logits, classify(images + random)).numpy()
    # A random direction of 3,072 barely meets the few the classifier reads.
    assert np.all(adversarial > 10 * by_chance)
    assert np.all(adversarial > 1e-3)


def test_the_perturbation_is_a_function_of_its_seed(classify, images):
    logits = classify(images)
    first = adversarial_perturbation(classify, images, logits, SEED).numpy()
    again = adversarial_perturbation(classify, images, logits, SEED).numpy()
    np.testing.assert_array_equal(first, again)


def test_a_classifier_that_ignores_the_image_gives_no_perturbation_and_no_loss(images):
    constant = lambda batch: tf.zeros([tf.shape(batch)[0], 10]) + tf.range(10.0)  # noqa: E731
    r_adv = adversarial_perturbation(constant, images, constant(images), SEED).numpy()
    assert np.all(np.isfinite(r_adv)) and np.abs(r_adv).max() == 0.0
    loss = virtual_adversarial_divergences(constant, images, constant(images), SEED)
    np.testing.assert_allclose(loss.numpy(), 0.0, atol=1e-6)


def test_the_term_trains_the_perturbed_prediction_not_the_clean_one(classify, images):
    logits = classify(images)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_sum(virtual_adversarial_divergences(classify, images, logits, SEED))
    assert float(loss) > 0.0
    assert tape.gradient(loss, logits) is None  # p(x) is held fixed


def _batch(classify, images, replicas: Replicas) -> Batch:
    return Batch(
        source_labels=tf.zeros(6, tf.int64),
        label_logits=classify(images),
        source_count=6,
        replicas=replicas,
        source_share=tf.fill([10], 0.1),
        target_share=tf.fill([10], 0.1),
        images=images,
        classify=classify,
        seed=SEED,
    )


def test_the_loss_is_the_mean_source_and_target_divergence(classify, images):
    per_image = virtual_adversarial_divergences(
        classify,
        images,
        classify(images),
        tf.random.experimental.stateless_fold_in(SEED, NOISE_STREAM),
    ).numpy()
    loss = float(get_method("vada").extra_loss(_batch(classify, images, ONE)))
    assert loss == pytest.approx(per_image[:6].mean() + per_image[6:].mean(), rel=1e-5)
    # Each of two replicas holds half the global batch: its part is half its own mean.
    part = float(get_method("vada").extra_loss(_batch(classify, images, Replicas(2))))
    assert part == pytest.approx(loss / 2, rel=1e-5)


def test_a_batch_without_the_steps_images_is_refused(classify, images):
    batch = Batch(tf.zeros(6, tf.int64), classify(images), 6, ONE, tf.ones(10), tf.ones(10))
    with pytest.raises(ValueError, match="vada needs the step's images"):
        get_method("vada").extra_loss(batch)


def test_vada_trains_two_steps_with_its_term(tiny_pair, tmp_path):
    from dann_serve.training.loop import train_run
    from dann_serve.training.rundir import read_metrics

    config = TrainConfig(*tiny_pair, method="vada", steps=2, batch_size=32, eval_every=1)
    summary = train_run(config, tmp_path / "run", show_progress=False)
    assert summary["method"] == "vada" and summary["step"] == 2
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert all(np.isfinite(float(row["label_loss"])) for row in rows)
    assert float(rows[-1]["lambda"]) > 0.0  # DANN's reversal, as the method promises


def test_the_trainer_gives_a_method_the_runs_seed_and_the_step(tiny_source, tiny_target):
    """``Batch.seed`` is (the run's seed, the step), the pair the data stream's draws
    use: what makes a method's own draws, VAT's directions, resume as they ran."""
    from dann_serve.training.methods import AdaptationMethod
    from dann_serve.training.step import Trainer

    seen = tf.Variable(tf.zeros([2], tf.int64))

    class Recording(AdaptationMethod):
        def extra_loss(self, batch: Batch) -> None:
            seen.assign(batch.seed)

    trainer = Trainer(TrainConfig(seed=7, batch_size=32), tiny_source, tiny_target)
    trainer.method = Recording()
    for step in range(3):
        trainer.train_step()
        assert seen.numpy().tolist() == [7, step]

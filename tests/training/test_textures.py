"""The textured source of ``dann-texture``: MNIST-M's blend onto procedural textures,
drawn from the run's seed and the step, applied to the source half of a batch only;
and the source hook every other method leaves as it is."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.training.augment import ShiftSchedule, training_batches
from dann_serve.training.methods import AdaptationMethod, get_method, method_names
from dann_serve.training.textures import blend_on_textures, random_textures

SEED = tf.constant([4, 11], tf.int64)


@pytest.fixture()
def digits() -> tf.Tensor:
    """16 images, black but for a full-ink bar in the middle."""
    images = np.zeros((16, 32, 32, 3), np.float32)
    images[:, 8:24, 14:18] = 1.0
    return tf.constant(images)


def test_where_the_digit_is_0_the_texture_shows_and_where_it_is_1_it_is_inverted(digits):
    texture = random_textures(tf.shape(digits), SEED).numpy()
    blended = blend_on_textures(digits, SEED).numpy()
    ink = digits.numpy() == 1.0
    np.testing.assert_allclose(blended[~ink], texture[~ink], atol=1e-6)
    np.testing.assert_allclose(blended[ink], 1.0 - texture[ink], atol=1e-6)


def test_textures_are_colourful_varied_and_in_unit_range(digits):
    texture = random_textures(tf.constant([64, 32, 32, 3]), SEED).numpy()
    assert texture.min() >= 0.0 and texture.max() <= 1.0
    assert np.median(texture.std(axis=(1, 2, 3))) > 0.05  # not flat
    assert np.median(np.abs(texture[..., 0] - texture[..., 1]).mean(axis=(1, 2))) > 0.02
    assert len(np.unique(texture.mean(axis=(1, 2, 3)).round(4))) == 64  # one per image


def test_the_textures_are_a_function_of_seed_and_step(digits):
    """What makes --resume draw the textures an uninterrupted run would have drawn."""
    first = blend_on_textures(digits, SEED).numpy()
    np.testing.assert_array_equal(first, blend_on_textures(digits, SEED).numpy())
    for other in ([4, 12], [5, 11]):
        assert not np.allclose(first, blend_on_textures(digits, tf.constant(other, tf.int64)))


def _pairs() -> tf.data.Dataset:
    pixels = (np.arange(8 * 32 * 32 * 3, dtype=np.int64).reshape(8, 32, 32, 3) % 251).astype(
        np.uint8
    )
    labels = np.arange(8, dtype=np.int64)
    pair = ((pixels[:4], labels[:4]), (pixels[4:], labels[4:]))
    return tf.data.Dataset.from_tensors(pair).repeat(3)


def test_a_method_textures_only_the_source_images_of_each_step():
    method = get_method("dann-texture")
    plain = list(training_batches(_pairs(), seed=9, shift=ShiftSchedule(total_steps=1)))
    textured = list(
        training_batches(
            _pairs(),
            seed=9,
            shift=ShiftSchedule(total_steps=1),
            augment_source=method.augment_source,
        )
    )
    for step, (((xs, ys), (xt, yt)), ((tx, tys), (ttx, tty))) in enumerate(
        zip(plain, textured, strict=True)
    ):
        np.testing.assert_array_equal(tys, ys)  # labels kept
        np.testing.assert_array_equal(ttx, xt)  # target images untouched
        np.testing.assert_array_equal(tty, yt)
        expected = blend_on_textures(xs, tf.constant([9, step], tf.int64))
        np.testing.assert_allclose(tx, expected.numpy(), atol=1e-6)  # step k: (seed, k)
        assert not np.allclose(tx, xs)


def test_other_methods_leave_the_batches_as_they_were():
    """The hook's default hands the source back as it is: the batches, and so the
    runs, of every method that does not override it are those of before the hook."""
    assert AdaptationMethod.augment_source is get_method("dann").augment_source.__func__
    images = tf.zeros([2, 32, 32, 3])
    assert AdaptationMethod().augment_source(images, SEED) is images
    plain = list(training_batches(_pairs(), seed=9, shift=ShiftSchedule(total_steps=1)))
    hooked = list(
        training_batches(
            _pairs(),
            seed=9,
            shift=ShiftSchedule(total_steps=1),
            augment_source=get_method("cdan").augment_source,
        )
    )
    for before, after in zip(plain, hooked, strict=True):
        for a, b in zip(tf.nest.flatten(before), tf.nest.flatten(after), strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_new_methods_are_offered_on_the_command_line():
    from click.testing import CliRunner

    from dann_serve.cli import main

    assert {"vada", "dann-texture"} <= set(method_names())
    result = CliRunner().invoke(main, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for line in ("vada: VADA", "dann-texture: DANN on source images"):
        assert line in result.output


@pytest.mark.parametrize("method", ["dann-texture", "cdan-texture"])
def test_textured_methods_train_on_textured_source_images(method, tiny_pair, tmp_path):
    from dann_serve.data import load_domain
    from dann_serve.training.evaluation import restore_model
    from dann_serve.training.loop import train_run
    from dann_serve.training.methods import get_method
    from dann_serve.training.step import Trainer

    config = TrainConfig(*tiny_pair, method=method, steps=2, batch_size=32, eval_every=1)
    source, target = (load_domain(name, None) for name in tiny_pair)
    (xs, _), _ = next(Trainer(config, source, target).iterator)
    (plain, _), _ = next(Trainer(TrainConfig(*tiny_pair, batch_size=32), source, target).iterator)
    assert not np.allclose(xs, plain)  # the trainer reads the method's hook
    summary = train_run(config, tmp_path / "run", show_progress=False)
    assert summary["method"] == method and summary["step"] == 2
    # CDAN+E's head reads features x predictions: the network is rebuilt from the method.
    conditional = get_method(method).conditional
    assert conditional == (method == "cdan-texture")
    restored = restore_model(tmp_path / "run")
    assert restored.conditional == conditional

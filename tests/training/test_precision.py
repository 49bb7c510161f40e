"""--precision mixed_bfloat16 and mixed_float16: the training model computes in 16 bits,
everything a user keeps (checkpoints, the weight average, evaluation, the export) stays
float32; float16 trains with a dynamic loss scale."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from dann_serve.config import TrainConfig, native_precision
from dann_serve.model.networks import build_model
from dann_serve.training.evaluation import restore_model
from dann_serve.training.loop import _train, train_run
from dann_serve.training.rundir import MetricsLog, read_metrics
from dann_serve.training.step import Trainer


# float16 trains on this CPU without fast kernels: seconds a step.
@pytest.fixture(
    scope="module", params=["mixed_bfloat16", pytest.param("mixed_float16", marks=pytest.mark.slow)]
)
def mixed_run(request, tiny_pair, tmp_path_factory):
    source, target = tiny_pair
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    # Batches of 8: this machine's CPU has no float16 kernels, and a float16 step
    # costs about as many seconds as the batch has tens of images.
    config = TrainConfig(
        source=source, target=target, steps=20, batch_size=8, eval_every=10,
        precision=request.param,
    )  # fmt: skip
    return run_dir, train_run(config, run_dir, show_progress=False)


@pytest.mark.parametrize(
    ("policy", "dtype"), [("mixed_bfloat16", tf.bfloat16), ("mixed_float16", tf.float16)]
)
@pytest.mark.parametrize(
    ("arch", "conditional"),
    # CDAN's domain head reads the features times the float32 class predictions: as
    # an outer product (mnist) and through the randomized multilinear map (svhn).
    [("mnist", False), ("mnist", True), ("svhn", True)],
)
def test_the_training_model_computes_in_16_bits_with_float32_variables(
    policy, dtype, arch, conditional
) -> None:
    model = build_model(TrainConfig(arch=arch), policy, conditional=conditional)
    images = tf.random.uniform((2, 32, 32, 3))
    assert model.features(images, training=True).dtype == dtype
    # The logits, whose softmax and losses are float32, come out of float32 layers.
    label_logits, domain_logits = model(images, training=True)
    assert label_logits.dtype == domain_logits.dtype == tf.float32
    assert {w.dtype for w in model.weights} == {"float32"}
    # The input normalisation measures brightness: float32 under any policy.
    assert [layer.dtype_policy.name for layer in model.features.layers[:3]] == ["float32"] * 3
    # Building it leaves the process's policy as it was, for every later model.
    assert keras.config.dtype_policy().name == "float32"


def test_a_16_bit_run_trains_and_restores_as_a_float32_model(mixed_run) -> None:
    run_dir, summary = mixed_run
    assert summary["step"] == 20 and np.isfinite(summary["source_test_accuracy"])
    model = restore_model(run_dir)
    label_logits, _ = model(tf.random.uniform((2, 32, 32, 3)), training=False)
    assert label_logits.dtype == tf.float32


def test_unknown_precision_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        TrainConfig(precision="float8")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse2 avx512f avx512_bf16 avx512_vnni", "mixed_bfloat16"),
        ("fpu sse2 amx_bf16 amx_tile", "mixed_bfloat16"),
        ("fpu sse2 avx2 avx512f", "float32"),  # bfloat16 would be emulated: slower
    ],
)
def test_auto_trains_in_bfloat16_only_on_a_cpu_that_computes_it(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert native_precision(cpuinfo) == expected
    assert native_precision(tmp_path / "missing") == "float32"


def test_auto_is_float32_where_the_model_would_not_train_on_that_cpu(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: avx512f avx512_bf16\n")
    assert native_precision(cpuinfo, tmp_path / "none") == "mixed_bfloat16"  # no GPU
    gpus = tmp_path / "gpus"
    (gpus / "0000:00:04.0").mkdir(parents=True)
    assert native_precision(cpuinfo, gpus) == "float32"  # the model trains on the GPU
    native_precision.cache_clear()  # read once per process: the environment is changed
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # bfloat16 without oneDNN: emulated
    assert native_precision(cpuinfo, tmp_path / "none") == "float32"
    native_precision.cache_clear()
    # Each worker of a cluster would resolve auto on its own CPU.
    assert TrainConfig(distribute="multi-worker").precision == "float32"


def test_a_run_records_what_auto_resolved_to_and_old_runs_read_as_float32() -> None:
    assert TrainConfig().precision == native_precision() != "auto"
    assert TrainConfig(precision="float32").precision == "float32"
    saved = {k: v for k, v in vars(TrainConfig()).items() if k != "precision"}
    assert TrainConfig.from_dict(saved).precision == "float32"  # saved before --precision


@pytest.mark.slow
def test_float16_scales_the_loss_and_skips_a_step_whose_gradients_overflow(
    tiny_source, tiny_target
) -> None:
    """A step whose scaled gradients are not finite leaves the weights and the step
    counter as they were and halves the scale; the next step trains."""
    config = TrainConfig(steps=10, batch_size=4, precision="mixed_float16")
    trainer = Trainer(config, tiny_source, tiny_target)
    optimizer = trainer.optimizer
    assert float(optimizer.scale_loss(1.0)) == 2.0**15
    before = [w.numpy() for w in trainer.model.trainable_weights]
    optimizer.dynamic_scale.assign(1e38)  # float32 gradients times this overflow
    trainer.train_step()
    assert trainer.step == 0 and float(optimizer.scale_loss(1.0)) == pytest.approx(5e37)
    for weight, old in zip(trainer.model.trainable_weights, before, strict=True):
        np.testing.assert_array_equal(weight.numpy(), old)
    optimizer.dynamic_scale.assign(2.0**15)
    trainer.train_step()
    assert trainer.step == 1
    assert any(
        not np.array_equal(weight.numpy(), old)
        for weight, old in zip(trainer.model.trainable_weights, before, strict=True)
    )


@pytest.mark.slow
def test_skipped_float16_steps_log_and_save_each_step_once(tiny_source, tiny_target, tmp_path):
    """The loop counts steps the optimiser took: while the loss scale comes down from
    an overflowing value, no step is measured or saved twice."""
    config = TrainConfig(steps=3, batch_size=4, eval_every=1, precision="mixed_float16")
    trainer = Trainer(config, tiny_source, tiny_target)
    # float16's largest value is about 2^16: scaled by 2^24, any gradient above 2^-8
    # overflows, and the scale halves step after step until none does (a few steps,
    # each as slow as a trained one on a CPU without float16 kernels).
    trainer.optimizer.dynamic_scale.assign(2.0**24)
    saved: list[int] = []
    _train(trainer, saved.append, MetricsLog(tmp_path, keep_up_to_step=-1), show=False)
    assert float(trainer.optimizer.scale_loss(1.0)) <= 2.0**22  # it skipped two or more
    assert saved == [1, 2, 3]
    assert [int(row["step"]) for row in read_metrics(tmp_path / "metrics.csv")] == [0, 1, 2, 3]

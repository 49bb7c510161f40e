import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.training.evaluation import evaluate_run, restore_model
from dann_serve.training.loop import load_pair, train_run
from dann_serve.training.rundir import RunError, read_metrics
from dann_serve.training.step import Trainer

RUN_FILES = ("config.json", "metrics.csv", "summary.json", "accuracy.png", "losses.png")


def _config(pair: tuple[str, str], **overrides) -> TrainConfig:
    source, target = pair
    values = dict(
        source=source, target=target, steps=40, batch_size=32, eval_every=10, learning_rate=0.01
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def finished_run(tiny_pair, tmp_path_factory) -> tuple[Path, dict]:
    """A run of ``_config``'s settings and its summary, trained once for the tests that
    read one (shared, read-only)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    return run_dir, train_run(_config(tiny_pair), run_dir, show_progress=False)


@pytest.fixture(scope="module")
def source_only_run(tiny_pair, tmp_path_factory) -> Path:
    """A source-only run long enough to learn the source (shared, read-only)."""
    config = _config(tiny_pair, method="source-only", steps=120, eval_every=20, learning_rate=0.03)
    run_dir = tmp_path_factory.mktemp("source-only") / "run"
    train_run(config, run_dir, show_progress=False)
    return run_dir


def test_short_training_lowers_label_loss(source_only_run) -> None:
    rows = read_metrics(source_only_run / "metrics.csv")
    losses = [float(row["label_loss"]) for row in rows[1:]]
    assert losses[-1] < 0.8 * losses[0]
    assert float(rows[-1]["source_accuracy"]) > float(rows[0]["source_accuracy"]) + 0.1


def test_a_run_writes_every_file(finished_run) -> None:
    run_dir, summary = finished_run

    for name in RUN_FILES:
        assert (run_dir / name).stat().st_size > 0, name
    assert list((run_dir / "tensorboard").iterdir())
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-40")

    rows = read_metrics(run_dir / "metrics.csv")
    assert [int(row["step"]) for row in rows] == [0, 10, 20, 30, 40]
    assert all(math.isfinite(float(row["label_loss"])) for row in rows)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["options"]["method"] == "dann"
    assert summary["method"] == "dann"
    assert config["options"]["steps"] == 40
    assert "tensorflow" in config["versions"]
    assert config["data"]["target"]["name"] == "tiny-digits"
    assert summary["step"] == 40
    assert summary["target_test_accuracy"] == pytest.approx(float(rows[-1]["target_accuracy"]))
    assert json.loads((run_dir / "summary.json").read_text()) == summary


def test_progress_outside_a_terminal_is_one_line_per_evaluation(
    tiny_pair, tmp_path, capsys
) -> None:
    # Under capsys stderr is not a terminal, as in a log file or a Kubernetes pod.
    train_run(_config(tiny_pair, steps=20, eval_every=10), tmp_path / "run", show_progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err  # no bar redrawn into the log
    lines = [line for line in err.splitlines() if ": step " in line]
    assert [line.split(": step ")[1].split()[0] for line in lines] == ["10/20", "20/20"]
    assert all(line.startswith("dann tiny-fonts->tiny-digits") for line in lines)
    assert all("loss=" in line and "tgt=" in line for line in lines)


def test_the_progress_names_the_variant_a_selection_trains() -> None:
    from dann_serve.training.loop import run_title

    assert run_title(TrainConfig()) == "dann"
    assert run_title(TrainConfig(method="cdan")) == "cdan"
    assert run_title(TrainConfig(method="dann-weak")) == "dann-weak"
    assert run_title(TrainConfig(method="source-only", lambda_max=0.1)) == "source-only"
    assert run_title(TrainConfig(lambda_max=0.1)) == "dann (lambda-max 0.1)"


def test_metrics_follow_the_schedules(finished_run) -> None:
    for row in read_metrics(finished_run[0] / "metrics.csv"):
        p = int(row["step"]) / 40
        assert float(row["lambda"]) == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1, abs=1e-5)
        assert float(row["learning_rate"]) == pytest.approx(0.01 / (1 + 10 * p) ** 0.75, rel=1e-5)


def test_source_only_keeps_lambda_at_zero(source_only_run) -> None:
    rows = read_metrics(source_only_run / "metrics.csv")
    assert {float(row["lambda"]) for row in rows} == {0.0}


def test_resume_after_interruption_continues_step_and_schedule(
    tiny_pair, finished_run, tmp_path, monkeypatch
) -> None:
    config = _config(tiny_pair)
    straight_dir = finished_run[0]  # the same settings, never interrupted

    original_step = Trainer.train_step

    def interrupted_step(self: Trainer) -> None:
        if self.step == 25:
            raise KeyboardInterrupt
        original_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "resumed", show_progress=False)
    assert tf.train.latest_checkpoint(str(tmp_path / "resumed" / "checkpoints")).endswith("-25")

    taken: list[int] = []  # the step counter before each step the resumed run takes

    def counted_step(self: Trainer) -> None:
        taken.append(self.step)
        original_step(self)

    monkeypatch.setattr(Trainer, "train_step", counted_step)
    summary = train_run(config, tmp_path / "resumed", resume=True, show_progress=False)
    assert summary["step"] == 40
    # Deterministic training from scratch would end in the same rows and weights: the
    # resumed run must have gone on from its checkpoint.
    assert taken == list(range(25, 40))

    straight = read_metrics(straight_dir / "metrics.csv")
    resumed = read_metrics(tmp_path / "resumed" / "metrics.csv")
    assert [row["step"] for row in resumed] == [row["step"] for row in straight]
    for a, b in zip(straight, resumed, strict=True):
        assert float(a["lambda"]) == pytest.approx(float(b["lambda"]), abs=1e-7)
        assert float(a["learning_rate"]) == pytest.approx(float(b["learning_rate"]), rel=1e-6)
    # Same data order, optimiser state and schedule position: the same weights.
    for a, b in zip(
        restore_model(straight_dir).weights,
        restore_model(tmp_path / "resumed").weights,
        strict=True,
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)


def test_existing_run_is_never_overwritten(tiny_pair, finished_run, tmp_path) -> None:
    config = _config(tiny_pair)
    shutil.copytree(finished_run[0], tmp_path / "run")
    before = (tmp_path / "run" / "metrics.csv").read_bytes()
    with pytest.raises(RunError, match=r"already exists.*--resume"):
        train_run(config, tmp_path / "run", show_progress=False)
    assert (tmp_path / "run" / "metrics.csv").read_bytes() == before


def test_resume_without_checkpoint_is_a_clear_error(tiny_pair, tmp_path) -> None:
    with pytest.raises(RunError, match="nothing to resume"):
        train_run(_config(tiny_pair), tmp_path / "empty", resume=True, show_progress=False)


def test_evaluate_matches_the_summary(tiny_pair, finished_run) -> None:
    run_dir, summary = finished_run
    accuracy = evaluate_run(run_dir, tiny_pair[1], "test")["accuracy"]
    assert accuracy == pytest.approx(summary["target_test_accuracy"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 33}, "even"),
        ({"steps": 0}, "steps"),
        ({"clip_norm": -1.0}, "clip-norm"),
    ],
)
def test_config_rejects_bad_options(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


def test_restore_refuses_a_checkpoint_without_the_averaged_weights(tiny_pair, tmp_path) -> None:
    """A foreign checkpoint must not load as a silently random model."""
    from dann_serve.files import write_json
    from dann_serve.training.evaluation import build_network

    config = _config(tiny_pair)
    write_json(tmp_path / "config.json", {"options": vars(config)})
    tf.train.Checkpoint(model=build_network(config)).save(str(tmp_path / "checkpoints" / "ckpt"))
    with pytest.raises(RunError, match="holds no averaged weights"):
        restore_model(tmp_path)


@pytest.mark.parametrize("clip_norm", [0.0, 0.05])
def test_clip_norm_bounds_the_size_of_a_step(tiny_pair, clip_norm: float) -> None:
    """The first SGD step moves the weights by lr * gradient: at most lr * clip_norm."""
    config = _config(tiny_pair, clip_norm=clip_norm, learning_rate=0.01)
    trainer = Trainer(config, *load_pair(config))
    before = [w.numpy() for w in trainer.model.trainable_variables]
    trainer.train_step()
    moved = math.sqrt(
        sum(
            float(np.sum((w.numpy() - b) ** 2))
            for w, b in zip(trainer.model.trainable_variables, before, strict=True)
        )
    )
    if clip_norm:
        assert moved <= 0.01 * clip_norm * 1.001
    else:
        assert moved > 0.01 * 0.05 * 2  # unclipped, the same first step is larger

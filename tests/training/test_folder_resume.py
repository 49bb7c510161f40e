"""``--resume`` of a run trained on folders: the saved options or nothing, and each step
logged exactly once however often the run is killed and resumed."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import tensorflow as tf
from support.image_folders import (
    TINY,
    Killed,
    dann_serve,
    error_line,
    labelled_folder,
    metric_steps,
    snapshot,
    unlabelled_folder,
)

from dann_serve.config import TrainConfig, native_precision
from dann_serve.data import cache_files
from dann_serve.training.loop import train_run
from dann_serve.training.step import Trainer

# Each test decodes into a cache of its own (the ``cache_dir`` fixture), never ~/.cache.
pytestmark = pytest.mark.usefixtures("cache_dir")

# -- --resume: the saved options or nothing ----------------------------------------------


@pytest.fixture(scope="module")
def folder_run(digits, tmp_path_factory) -> dict[str, Path]:
    """A finished 4-step run on a labelled source folder and an unlabelled target folder
    (shared: the tests that use it must leave it as it is)."""
    root = tmp_path_factory.mktemp("folder-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(cache_files.CACHE_DIR_VARIABLE, str(root / "cache"))
        paths = {
            "source": labelled_folder(root / "source", digits, per_class=4),
            "target": unlabelled_folder(root / "target", digits, count=12),
            "other": labelled_folder(root / "other", digits, per_class=2, skip=4),
            "run": root / "run",
        }
        args = ("--source", paths["source"], "--target", paths["target"])
        result = dann_serve("train", *args, *TINY, "--out", paths["run"])
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return paths


RESUME_CONFLICTS = {
    "steps": (["--steps", "8"], ["--steps 4 -> 8"]),
    "seed and method": (
        ["--seed", "1", "--method", "source-only"],
        ["--seed 0 -> 1", "--method dann -> source-only"],
    ),
    "source folder": (["--source", "{other}"], ["--source {source} -> {other}"]),
    "target test folder": (["--target-test", "{other}"], ["--target-test None -> {other}"]),
    "skip unreadable": (["--skip-unreadable"], ["--skip-unreadable False -> True"]),
    "batch size, with --quiet": (["--batch-size", "16", "--quiet"], ["--batch-size 8 -> 16"]),
}


@pytest.mark.parametrize("case", RESUME_CONFLICTS)
def test_resume_with_other_options_exits_2_naming_each_and_leaves_the_run(
    case: str, folder_run: dict[str, Path]
) -> None:
    paths = {name: str(path.resolve()) for name, path in folder_run.items()}
    given, named = RESUME_CONFLICTS[case]
    run = folder_run["run"]
    before = snapshot(run)
    result = dann_serve("train", "--out", run, "--resume", *(arg.format(**paths) for arg in given))
    line = error_line(result, code=2)
    assert line.startswith(
        f"dann-serve: error: {run} was trained with other options (saved -> given): "
    )
    differing = line.split("(saved -> given): ")[1].split("; resume without them")[0]
    assert sorted(differing.split("; ")) == sorted(words.format(**paths) for words in named)
    assert snapshot(run) == before


def test_resume_allows_the_saved_values_data_dir_and_quiet(
    folder_run: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved values given again (a folder relative to here is the same folder), and
    where the data lies: the run goes on (here: it is finished, so it only reports)."""
    run = tmp_path / "run"
    shutil.copytree(folder_run["run"], run)
    monkeypatch.chdir(folder_run["source"].parent)
    result = dann_serve(
        "train",
        "--out",
        run,
        "--resume",
        "--quiet",
        "--data-dir",
        tmp_path,
        "--steps",
        "4",
        "--source",
        "./source",
    )
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    assert result.output.startswith(f"{run}: step 4, ")


def test_resume_with_precision_auto_keeps_the_dtype_the_run_trained_in(
    folder_run: dict[str, Path], tmp_path: Path
) -> None:
    """``--precision auto`` asks for no dtype in particular: a run saved in another one
    than auto picks here is resumed in its own, not refused."""
    run = tmp_path / "run"
    shutil.copytree(folder_run["run"], run)
    saved = json.loads((run / "config.json").read_text())
    other = "float32" if native_precision() != "float32" else "mixed_bfloat16"
    saved["options"]["precision"] = other
    (run / "config.json").write_text(json.dumps(saved))
    result = dann_serve("train", "--out", run, "--resume", "--quiet", "--precision", "auto")
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    assert result.output.startswith(f"{run}: step 4, ")
    assert json.loads((run / "config.json").read_text())["options"]["precision"] == other


# -- a resumed run logs each step exactly once ---------------------------------------------


def _die_in_step(at: int):
    original = Trainer.train_step

    def step(self: Trainer) -> None:
        if self.step == at:
            raise Killed
        original.__get__(self, Trainer)()

    return Trainer, "train_step", step


def _die_in_save(at: int):
    original = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **options):
        if checkpoint_number == at:
            raise Killed
        return original(self, checkpoint_number=checkpoint_number, **options)

    return tf.train.CheckpointManager, "save", save


KILLS = {
    # where: (patch, steps in metrics.csv after the kill, latest checkpoint then)
    "in the first step": (_die_in_step(0), [0], None),
    "writing the first checkpoint": (_die_in_save(2), [0, 2], None),
    "after the first checkpoint": (_die_in_step(2), [0, 2], 2),
    "writing the last checkpoint": (_die_in_save(4), [0, 2, 4], 2),
}


@pytest.mark.slow
@pytest.mark.parametrize("where", KILLS)
def test_every_resume_leaves_each_step_exactly_once(
    where: str, tiny_pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed (simulated in process) after the step-0 row and before the first
    checkpoint, a run starts over from step 0 on resume: the step-0 row must not be
    logged twice (0, 0, 2, 4)."""
    (owner, name, dying), logged, checkpoint = KILLS[where]
    config = TrainConfig(
        source=tiny_pair[0], target=tiny_pair[1], steps=4, batch_size=8, eval_every=2
    )
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(owner, name, dying)
        with pytest.raises(Killed):
            train_run(config, run, show_progress=False)
    assert metric_steps(run) == logged
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    assert (int(latest.rsplit("-", 1)[1]) if latest else None) == checkpoint

    summary = train_run(config, run, resume=True, show_progress=False)
    assert summary["step"] == 4
    assert metric_steps(run) == [0, 2, 4]
    with (run / "metrics.csv").open(newline="") as handle:
        assert next(csv.reader(handle))[0] == "step"  # one header, at the top

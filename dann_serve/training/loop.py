"""The training loop: a run directory in, trained (or resumed, or read back) to its
last step, with metrics, checkpoints, curves and summary written on the way.

The step itself is :class:`dann_serve.training.step.Trainer`'s.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from dann_serve import data
from dann_serve.config import TrainConfig
from dann_serve.data import Domain
from dann_serve.files import write_json
from dann_serve.progress import on_terminal, progress_bar
from dann_serve.training.distribute import Placement, placement
from dann_serve.training.evaluation import label_free_figures
from dann_serve.training.methods import get_method
from dann_serve.training.plots import plot_curves
from dann_serve.training.rundir import (
    CHECKPOINTS,
    MetricsLog,
    RunError,
    check_run_dir,
    read_json,
    read_metrics,
    run_record,
)
from dann_serve.training.step import Trainer


def load_pair(config: TrainConfig, progress: bool = False) -> tuple[Domain, Domain]:
    """The run's two domains, each big enough to fill its half of a batch."""
    pair = []
    for role, spec, test in (
        ("source", config.source, config.source_test),
        ("target", config.target, config.target_test),
    ):
        domain = data.load_domain(
            spec,
            config.data_dir,
            test,
            role=role,
            skip_unreadable=config.skip_unreadable,
            progress=progress,
        )
        if len(domain.train) < config.batch_size // 2:
            raise data.DatasetError(
                f"{spec}: {len(domain.train)} training images, fewer than the "
                f"{config.batch_size // 2} of one batch's {role} half (--batch-size "
                f"{config.batch_size})"
            )
        pair.append(domain)
    return pair[0], pair[1]


FRESH, STARTED, FINISHED = 0, 1, 2  # what a run directory holds (run_state)


def worker_summary(step: int, place: Placement) -> dict:
    """What a worker other than the chief returns for a run or a selection: the chief
    writes and reports it, so the others have only the step they reached."""
    return {"step": step, "task": place.task, "chief": False}


def train_or_reuse(
    config: TrainConfig,
    run_dir: Path,
    show_progress: bool = True,
    warm_from: Path | None = None,
) -> dict:
    """The summary of the run in ``run_dir``: read back if it finished, resumed if it
    was started, trained otherwise. Commands that train many runs (``compare``,
    ``train --select``) go through this, so that starting them again picks up where
    they stopped. Under multi-worker the chief's view of the folder decides for all."""
    run_dir = Path(run_dir)
    place = placement(config)
    state = run_state(run_dir, place)
    if state == FINISHED:
        if place.chief:
            return read_json(run_dir / "summary.json")
        return worker_summary(config.steps, place)
    return train_run(config, run_dir, state == STARTED, show_progress, warm_from)


def run_state(run_dir: Path, place: Placement, started: str = "config.json") -> int:
    """FINISHED (``summary.json`` is there), STARTED (``started`` is) or FRESH, as the
    chief sees ``run_dir``: under multi-worker the chief may be writing those files
    while another worker looks, and every worker must take the same way."""
    if (run_dir / "summary.json").exists():
        state = FINISHED
    else:
        state = STARTED if (run_dir / started).exists() else FRESH
    return place.agree(state)


def train_run(
    config: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    show_progress: bool = True,
    warm_from: Path | None = None,
) -> dict:
    """Train (or continue) the run in ``run_dir`` and return its summary (on a worker
    of a multi-worker run that is not the chief: only the step and the task).
    ``warm_from``, a finished run's directory, starts the weights from its model
    rather than at random, unless there is a checkpoint of this run to resume."""
    run_dir = Path(run_dir)
    get_method(config.method)  # an unknown method fails before anything is made
    place = placement(config)  # first: TensorFlow's devices and cluster are fixed at start
    config = check_run_dir(config, run_dir, resume, place.chief)
    # Before mkdir: bad data leaves no empty run behind.
    source, target = load_pair(config, progress=show_progress and place.chief)
    trainer = Trainer(config, source, target, place)
    latest = tf.train.latest_checkpoint(str(run_dir / CHECKPOINTS))
    if resume and latest:  # every worker restores the chief's checkpoint
        _restore(trainer, latest)
    elif warm_from is not None:
        _warm_start(trainer, Path(warm_from))
    with place.checkpoint_directory(run_dir) as (directory, keep):
        manager = tf.train.CheckpointManager(trainer.checkpoint, str(directory), keep)

        def save(step: int) -> None:
            manager.save(checkpoint_number=step)
            place.discard(directory)

        if not place.chief:
            with place.peers_watched():
                _train(trainer, save, None, show=False)
            return worker_summary(trainer.step, place)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", run_record(config, source, target, place.describe()))
        # A run resumed at step 0 (killed before its first checkpoint) logs step 0 again.
        kept = trainer.step if trainer.step > 0 else -1
        with place.peers_watched():
            _train(trainer, save, MetricsLog(run_dir, keep_up_to_step=kept), show_progress)
    return _finish(config, run_dir, _target_figures(trainer))


def _restore(trainer: Trainer, checkpoint: str) -> None:
    """The run's state from ``checkpoint``; a RunError saying what to do when it does not
    fit this version's trainer (TensorFlow's own error is a page of traceback)."""
    try:
        trainer.checkpoint.restore(checkpoint).assert_existing_objects_matched()
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, AssertionError) as error:
        what = (
            "its data stream's position was saved by another version of dann-serve"
            if "dataset iterator" in str(error)
            else "it does not hold this version's model and optimiser"
        )
        raise RunError(
            f"{checkpoint}: cannot resume from it: {what}; finish the run with the version "
            "that started it, or start a new run with another --out"
        ) from None


def _warm_start(trainer: Trainer, parent: Path) -> None:
    """Both the trained and the averaged weights from ``parent``'s model (its averaged
    weights, the ones it serves); the optimiser and the schedules start at step 0."""
    latest = tf.train.latest_checkpoint(str(parent / CHECKPOINTS))
    if latest is None:
        raise RunError(f"{parent}: no checkpoint in {parent / CHECKPOINTS} to start from")
    for model in (trainer.model, trainer.averaged):
        tf.train.Checkpoint(averaged=model).restore(latest).expect_partial()


def _train(
    trainer: Trainer, save: Callable[[int], None], metrics: MetricsLog | None, show: bool
) -> None:
    """Step until ``config.steps``, measuring (where there is a ``metrics`` log: the
    chief) and checkpointing every ``eval_every`` steps and at the last; an
    interruption saves a checkpoint first."""
    config = trainer.config
    if trainer.step == 0 and metrics:
        metrics.log(trainer.measure())
    title = f"{run_title(config)} {config.source}->{config.target}"
    lines = show and not on_terminal()  # a log keeps one line per evaluation instead
    bar = progress_bar(
        show=show,
        total=config.steps,
        initial=trainer.step,
        desc=title,
        unit="step",
        dynamic_ncols=True,
    )
    try:
        while trainer.step < config.steps:
            before = trainer.step
            trainer.train_step()
            step = trainer.step
            if step == before:  # float16's loss scaling skipped a step that overflowed
                continue
            bar.update(step - before)
            if step % config.eval_every == 0 or step == config.steps:
                if metrics:
                    row = trainer.measure()
                    metrics.log(row)
                    figures = {
                        "loss": f"{row['label_loss']:.3f}",
                        "src": f"{row['source_accuracy']:.3f}",
                        "tgt": _shown(row["target_accuracy"]),
                        "dom": f"{row['domain_accuracy']:.2f}",
                    }
                    bar.set_postfix(figures)
                    if lines:
                        shown = " ".join(f"{name}={value}" for name, value in figures.items())
                        print(f"{title}: step {step}/{config.steps} {shown}", file=sys.stderr)
                save(step)
    except KeyboardInterrupt:
        save(trainer.step)
        raise
    finally:
        bar.close()
        if metrics:
            metrics.close()


def run_title(config: TrainConfig) -> str:
    """The run's name in its progress: its method (what sets ``--select``'s candidates
    apart, so that a log of a selection tells them apart), and ``--lambda-max`` where
    it is not the default and the method reverses the domain gradient at all."""
    changed = config.lambda_max != TrainConfig.lambda_max  # the default, on the class
    if changed and get_method(config.method).reversal_strength(config.lambda_max):
        return f"{config.method} (lambda-max {config.lambda_max:g})"
    return config.method


def _target_figures(trainer: Trainer) -> dict:
    """Whether the target's accuracy is known, and what is known of it without labels."""
    test = trainer.target.test
    return {
        "target_labels": test.labelled,
        "target_label_free": label_free_figures(trainer.averaged, test),
    }


def _finish(config: TrainConfig, run_dir: Path, target_figures: dict) -> dict:
    """summary.json and the curves, from the metrics of the finished run."""
    rows = read_metrics(run_dir / "metrics.csv", config.steps)
    final = rows[-1]
    summary = {
        "step": int(final["step"]),
        "method": config.method,
        "source": config.source,
        "target": config.target,
        "arch": config.arch,
        "seed": config.seed,
        "source_test_accuracy": float(final["source_accuracy"]),
        "target_test_accuracy": _number(final["target_accuracy"]),
        "domain_accuracy": float(final["domain_accuracy"]),
        **target_figures,
    }
    write_json(run_dir / "summary.json", summary)
    plot_curves(rows, run_dir)
    return summary


def _number(text: str) -> float | None:
    """A metrics.csv value; an empty cell (no labels to measure against) is None."""
    return float(text) if text not in ("", None) else None


def _shown(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3f}"

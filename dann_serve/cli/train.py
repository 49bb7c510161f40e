"""``train``, ``evaluate`` and ``samples``: one run, and the images it is tried on."""

from __future__ import annotations

from pathlib import Path

import click

from dann_serve.cli.common import (
    DEFAULTS,
    DOWNLOAD_HELP,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    candidate_line,
    criterion_option,
    data_dir_option,
    fail,
    fetch_data,
    given_on_command_line,
    train_config,
    training_options,
)
from dann_serve.config import TrainConfig
from dann_serve.runtime import load_tensorflow


@click.command()
@training_options
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run directory to create (or to continue with --resume).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue --out from its last checkpoint, with its saved options.",
)
@click.option(
    "--select",
    is_flag=True,
    help="Train four candidate methods (source-only, dann, dann-cw, and cdan where the "
    "domains start far apart or dann-weak where close) on the same data and keep the one "
    "--criterion ranks first; no target label is read.",
)
@criterion_option()
def train(
    out: Path,
    resume: bool,
    select: bool,
    criterion: str,
    quiet: bool,
    data_dir: Path | None,
    download: bool,
    **options,
) -> None:
    """Train with one adaptation method (--method) and write a run directory."""
    load_tensorflow()
    from dann_serve.data import DatasetError
    from dann_serve.training.rundir import RunError

    config = train_config(data_dir, **options)
    if select and "method" in given_on_command_line(config):
        fail("--select trains each candidate method: leave out --method", EXIT_USAGE)
    try:
        saved = _saved_config(out, select) if resume else None
        if saved is not None:
            _refuse_other_options(out, saved, config)
        if download:  # --resume trains on the run's saved data sets, so fetch those
            chosen = saved or config
            fetch_data([chosen.source, chosen.target], chosen.data_dir, quiet)
        summary = _train(config, out, resume, select, criterion, not quiet)
    except (RunError, DatasetError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail(
            f"interrupted; progress is saved, continue with: dann-serve train --out {out} --resume",
            EXIT_INTERRUPTED,
        )
    if not summary.get("chief", True):
        click.echo(
            f"{out}: {summary['task']} trained to step {summary['step']}; the chief wrote the run"
        )
        return
    target = summary["target_test_accuracy"]
    click.echo(
        f"{out}: step {summary['step']}, source test accuracy "
        f"{summary['source_test_accuracy']:.4f}, target test accuracy "
        + (f"{target:.4f}" if target is not None else "unknown (no target labels)")
        + f", domain accuracy {summary['domain_accuracy']:.4f}"
    )


def _saved_config(out: Path, select: bool) -> TrainConfig | None:
    """The options an interrupted run (or selection) was started with, if any."""
    from dann_serve.experiments.selection import SELECTION
    from dann_serve.training.rundir import read_json, saved_config

    path = out / (SELECTION if select else "config.json")
    if not path.exists():
        return None
    document = read_json(path)
    return saved_config(document["base"] if select else document["options"], out)


def _train(
    config: TrainConfig, out: Path, resume: bool, select: bool, criterion: str, show: bool
) -> dict:
    from dann_serve.experiments.selection import select_run
    from dann_serve.training.loop import train_run

    if not select:
        return train_run(config, out, resume=resume, show_progress=show)
    summary = select_run(config, out, resume, criterion, show_progress=show)
    if summary.get("chief", True):
        click.echo("\n".join(selection_lines(summary["selection"])))
    return summary


def selection_lines(selection: dict) -> list[str]:
    """What a finished ``--select`` prints: why these candidates, then each one's score
    by the criterion that chose (the one the selection was started with, which a
    resumed selection keeps), the kept one starred."""
    from dann_serve.experiments.selection import started_close, started_colour

    criterion, close = selection["criterion"], started_close(selection)
    lines = [
        f"domain separability {selection['separability']:.3f} "
        + (
            f"< {selection['close_below']}: the domains start close, a weak reversal competes"
            if close
            else f">= {selection['close_below']}: the domains start far apart, CDAN competes"
        )
    ]
    if started_colour(selection):
        lines.append("the target is in colour: the adapting candidates train on a textured source")
    lines += [candidate_line(row, criterion) for row in selection["candidates"]]
    return lines


def _refuse_other_options(out: Path, saved: TrainConfig, config: TrainConfig) -> None:
    """Exit 2, the run untouched, if the command line asks for other options than the
    run was trained with: its schedules and data follow them from step 0."""
    differing = saved.differences(given_on_command_line(config))
    if differing:
        fail(
            f"{out} was trained with other options (saved -> given): {'; '.join(differing)}; "
            "resume without them, or train into another --out",
            EXIT_USAGE,
        )


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--dataset",
    required=True,
    help="Data set to evaluate on (e.g. digits), or a folder of images, labelled or not "
    "(all of a folder's images; --split is for data sets).",
)
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@data_dir_option()
@click.option("--download", is_flag=True, help=DOWNLOAD_HELP)
def evaluate(run: Path, dataset: str, split: str, data_dir: Path | None, download: bool) -> None:
    """Print the label accuracy of RUN's latest checkpoint on a data set split.

    Without labels (an unlabelled folder) the accuracy is unknown; what is printed
    then, as always, is the share of images given each class and the share the
    domain head calls target.
    """
    if download:
        fetch_data([dataset], data_dir)
    load_tensorflow()
    from dann_serve.data import DatasetError
    from dann_serve.training.evaluation import evaluate_run
    from dann_serve.training.rundir import RunError

    try:
        figures = evaluate_run(run, dataset, split, data_dir)
    except (RunError, DatasetError) as error:
        fail(str(error))
    accuracy = figures["accuracy"]
    shown = f"{accuracy:.4f}" if accuracy is not None else "unknown (no labels)"
    classes = " ".join(
        f"{digit}:{share:.1%}" for digit, share in enumerate(figures["predicted_classes"])
    )
    click.echo(f"{run}: {dataset} {split} accuracy {shown}")
    click.echo(f"  predicted classes {classes}; called target {figures['called_target']:.1%}")


@click.command()
@click.option("--dataset", default="digits", show_default=True)
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--count", type=click.IntRange(min=1), default=10, show_default=True)
@data_dir_option()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def samples(dataset: str, split: str, count: int, data_dir: Path | None, out: Path) -> None:
    """Write COUNT images of a data set as PNG files (true label in each name)."""
    from dann_serve.data import DatasetError
    from dann_serve.data.samples import write_samples

    try:
        paths = write_samples(dataset, out, count, split, str(data_dir) if data_dir else None)
    except DatasetError as error:
        fail(str(error))
    click.echo(f"{out}: {len(paths)} {dataset} {split} images")

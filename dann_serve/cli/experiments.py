"""``compare``, ``reverse-validate`` and ``report``: many runs, compared and written up."""

from __future__ import annotations

from pathlib import Path

import click

from dann_serve.cli.common import (
    EXIT_USAGE,
    criterion_option,
    data_dir_option,
    fail,
    fetch_data,
    parse_pairs,
    report_error,
    seeds_option,
    train_config,
    training_options,
)
from dann_serve.config import REVERSE_VALIDATION_STEPS
from dann_serve.runtime import load_tensorflow


@click.command("reverse-validate")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=REVERSE_VALIDATION_STEPS,
    show_default=True,
    help="Training steps of each reverse model.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def reverse_validate(runs: tuple[Path, ...], steps: int, quiet: bool) -> None:
    """Score RUNS without target labels (Ganin et al. 2016, 5.1.5); higher is better.

    Labels the target training images with each run's model, trains a reverse model
    from them back to the source, and prints its source test accuracy: a way to
    choose between settings that never reads a target label.
    """
    load_tensorflow()
    from dann_serve.data import DatasetError
    from dann_serve.experiments.reverse_validation import reverse_validation
    from dann_serve.training.rundir import RunError

    failed = False
    for run in runs:
        try:
            score = reverse_validation(run, steps, show_progress=not quiet)
        except (RunError, DatasetError) as error:
            report_error(str(error))
            failed = True
            continue
        click.echo(f"{run}: reverse validation {score:.4f}")
    if failed:
        raise SystemExit(1)


@click.command()
@training_options
@seeds_option("Comma-separated seeds; source-only and --method run for each.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/compare"),
    show_default=True,
    help="Parent of the run directories (finished runs are reused).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the table as Markdown to this file.",
)
@click.option(
    "--select",
    is_flag=True,
    help="Also run train --select for each seed (into <pair>/select-seed<N>/); its "
    "candidates of the same methods are the seed's two runs, not trained again.",
)
@criterion_option()
def compare(
    seeds: list[int],
    out: Path,
    report: Path | None,
    select: bool,
    criterion: str,
    quiet: bool,
    data_dir: Path | None,
    download: bool,
    **options,
) -> None:
    """Train source-only and --method (DANN by default) with identical settings per seed
    (and, with --select, the run train --select keeps); print the table."""
    from dann_serve.experiments.compare import compared

    base = train_config(data_dir, **options)
    try:
        compared(base)
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    if download:
        fetch_data([base.source, base.target], base.data_dir, quiet)
    load_tensorflow()
    from dann_serve.data import DatasetError
    from dann_serve.experiments.compare import pair_table, run_pair, run_selections
    from dann_serve.training.distribute import placement
    from dann_serve.training.rundir import RunError

    try:
        summaries = run_pair(base, seeds, out, show_progress=not quiet)
        selections = (
            run_selections(base, seeds, out, criterion, show_progress=not quiet) if select else []
        )
        place = placement(base)
    except (RunError, DatasetError) as error:
        fail(str(error))
    if not place.chief:  # a worker of --distribute multi-worker: the chief reports
        click.echo(f"{out}: {place.task} trained every run; the chief wrote them")
        return
    table, _ = pair_table(summaries, selections)
    click.echo(table)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(f"## {base.source} -> {base.target}\n\n{table}\n")


@click.command()
@click.option(
    "--runs",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/compare"),
    show_default=True,
    help="The --out folder of dann-serve compare (<source>-<target>/<method>-seed<N>/).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Document to write; only the text between its results markers is replaced "
    "[default: RESULTS.md in --runs] (make results writes docs/RESULTS.md).",
)
@click.option(
    "--pairs",
    default="usps:mnist,mnist:usps,fonts:digits,fonts:mnist",
    show_default=True,
    callback=parse_pairs,
    help="SOURCE:TARGET pairs, in order.",
)
@seeds_option("Seeds each pair should have; absent ones are listed as missing.")
@click.option(
    "--figures",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the PNG figures [default: results/ beside --out].",
)
@data_dir_option(
    "Data folder for the feature pictures and data notes [default: each run's own --data-dir]."
)
@click.option(
    "--feature-images",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Source and target test images each in the feature pictures (0: none).",
)
@click.option(
    "--tsne/--no-tsne",
    default=True,
    show_default=True,
    help="Add a t-SNE row to the feature pictures (PCA is always drawn).",
)
def report(
    runs: Path,
    out: Path | None,
    pairs: list[tuple[str, str]],
    seeds: list[int],
    figures: Path | None,
    data_dir: Path | None,
    feature_images: int,
    tsne: bool,
) -> None:
    """Write the results document from the finished runs under RUNS (trains nothing).

    It is written into RUNS (RUNS/RESULTS.md, figures in RUNS/results/) unless --out
    names another document: a report of one's own runs never overwrites the
    repository's docs/RESULTS.md.
    """
    from dann_serve.experiments.markdown import ReportError
    from dann_serve.experiments.results_page import generate_report

    if not runs.is_dir():
        fail(
            f"{runs}: no such folder of runs (train pairs into it first with "
            f"dann-serve compare --out {runs})"
        )
    if feature_images:
        load_tensorflow()
    try:
        outcome = generate_report(
            runs, out, pairs, seeds, figures, data_dir, feature_images, tsne, log=click.echo
        )
    except (ReportError, OSError) as error:
        fail(str(error))
    click.echo(
        f"{outcome.document}: {len(outcome.pairs)} pair(s), {len(outcome.figures)} figure(s)"
    )

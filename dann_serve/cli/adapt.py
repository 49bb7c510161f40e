"""``adapt``: a trained run adapted again to a new folder of unlabelled images."""

from __future__ import annotations

from pathlib import Path

import click

from dann_serve.cli.common import EXIT_INTERRUPTED, criterion_option, fail
from dann_serve.runtime import load_tensorflow


@click.command()
@click.argument("parent_run", type=click.Path(path_type=Path))
@click.option(
    "--target",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of unlabelled images to adapt to (a serve --capture-dir folder does).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory to create (or to continue with --resume).",
)
@click.option(
    "--start",
    type=click.Choice(["warm", "fresh"]),
    default="warm",
    show_default=True,
    help="Start from the parent's weights (warm) or from random ones (fresh).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Training steps [default: 300 warm, 600 fresh].",
)
@criterion_option()
@click.option("--resume", is_flag=True, help="Continue an interrupted adaptation in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def adapt(
    parent_run: Path,
    target: Path,
    out: Path,
    start: str,
    steps: int | None,
    criterion: str,
    resume: bool,
    quiet: bool,
) -> None:
    """Adapt PARENT_RUN (a finished run) to the unlabelled images of --target.

    Trains the parent's method on the parent's source and the new target, then scores
    the new run and the parent on the new target by --criterion (no label read) and
    keeps the better; a tie keeps the parent. The run records its lineage (parent run,
    parent version, target folder, start), which export copies into export.json.

    Warm start is the default: on usps -> mnist adapted to mnist-tight it reached in
    300 steps what a fresh start reached in 600, by the criterion, in half the time
    (docs/TRAINING.md, "Adapting a served model to new images").
    """
    load_tensorflow()
    from dann_serve.data import DatasetError
    from dann_serve.experiments.adaptation import adapt_run
    from dann_serve.training.rundir import RunError

    try:
        summary = adapt_run(
            parent_run, target, out, start, steps, criterion, resume, show_progress=not quiet
        )
    except (RunError, DatasetError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail(
            f"interrupted; continue with: dann-serve adapt {parent_run} --target {target} "
            f"--out {out} --resume",
            EXIT_INTERRUPTED,
        )
    click.echo("\n".join(adaptation_lines(out, summary)))


def adaptation_lines(out: Path, summary: dict) -> list[str]:
    """Each candidate's score, the kept one starred, and which one the run is."""
    adaptation = summary["adaptation"]
    criterion = adaptation["criterion"]
    lines = [
        f"{'*' if row['chosen'] else ' '} {row['name']:<8} {criterion} "
        f"{row['scores'][criterion]:+.4f}  ({row['description']})"
        for row in adaptation["candidates"]
    ]
    if adaptation["parent_kept"]:
        lines.append(f"{out}: the parent scores better on the new target; the run is its model")
    else:
        lines.append(f"{out}: the adapted model scores better on the new target; the run is it")
    return lines

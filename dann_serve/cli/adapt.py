"""``adapt``: a trained run adapted again to a new folder of unlabelled images."""

from __future__ import annotations

from pathlib import Path

import click

from dann_serve.cli.common import EXIT_INTERRUPTED, candidate_line, criterion_option, fail
from dann_serve.config import ADAPT_STARTS, DEFAULT_ADAPT_START, DEFAULT_ADAPT_STEPS
from dann_serve.runtime import load_tensorflow
from dann_serve.training.methods import method_names


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
    type=click.Choice(ADAPT_STARTS),
    default=DEFAULT_ADAPT_START,
    show_default=True,
    help="Start from the parent's weights (warm) or from random ones (fresh).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Training steps [default: "
    + ", ".join(f"{steps} {start}" for start, steps in DEFAULT_ADAPT_STEPS.items())
    + "].",
)
@click.option(
    "--method",
    type=click.Choice(method_names()),
    default=None,
    help="Adaptation method [default: dann-texture for colour images, else the parent's].",
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
    method: str | None,
    criterion: str,
    resume: bool,
    quiet: bool,
) -> None:
    """Adapt PARENT_RUN (a finished run) to the unlabelled images of --target.

    Trains the parent's method (or --method) on the parent's source and the new
    target; where the new images are in colour and no --method is given, DANN on a
    textured source instead. Then scores the new run and the parent on the new target
    by --criterion (no label read) and keeps the better; a tie keeps the parent. The run
    records its lineage (parent run, parent version, target folder, start), which
    export copies into export.json.

    Warm start is the default, needing about half the steps of a fresh one
    (docs/TRAINING.md, "Adapting a served model to new images"); what adapt wins back
    on shifted streams with known labels: docs/MONITORING.md.
    """
    load_tensorflow()
    from dann_serve.data import DatasetError
    from dann_serve.experiments.adaptation import adapt_run
    from dann_serve.training.rundir import RunError

    try:
        summary = adapt_run(
            parent_run,
            target,
            out,
            start,
            steps,
            criterion,
            resume,
            show_progress=not quiet,
            method=method,
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
    lines = [candidate_line(row, criterion, width=8) for row in adaptation["candidates"]]
    if adaptation["parent_kept"]:
        lines.append(f"{out}: the parent scores better on the new target; the run is its model")
    else:
        lines.append(f"{out}: the adapted model scores better on the new target; the run is it")
    return lines

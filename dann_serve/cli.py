"""The ``dann-serve`` command: option parsing only; the work lives in plain modules.

TensorFlow is imported inside each command, not at module level, so that
``dann-serve --help`` and usage errors answer at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from dann_serve.config import ARCHITECTURES, MODES, REVERSE_VALIDATION_STEPS, TrainConfig
from dann_serve.runtime import load_tensorflow

DEFAULTS = TrainConfig()
DATA_DIR_HELP = (
    "Folder holding the files of file-based data sets, each in <data-dir>/<name>/ "
    "[default: $DANN_DATA_DIR or ~/.cache/dann-serve/data]."
)
DOWNLOAD_HELP = "First fetch missing mnist/svhn files into the data folder (md5-checked)."


def _parse_seeds(context: click.Context, parameter: click.Parameter, value: str) -> list[int]:
    try:
        seeds = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not seeds:
        raise click.BadParameter("name at least one seed")
    return seeds


def _error(message: str) -> None:
    click.echo(f"dann-serve: error: {message}", err=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    _error(message)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dann-serve")
def main() -> None:
    """Train domain-adversarial digit models, export them, serve them."""


def training_options(command):
    """The options every training command shares; defaults come from TrainConfig."""
    options = [
        click.option(
            "--source", default=DEFAULTS.source, show_default=True, help="Labelled source data set."
        ),
        click.option(
            "--target",
            default=DEFAULTS.target,
            show_default=True,
            help="Unlabelled target data set (its labels are only reported).",
        ),
        click.option(
            "--arch",
            type=click.Choice(ARCHITECTURES),
            default=DEFAULTS.arch,
            show_default=True,
            help="Network of Ganin et al. 2016.",
        ),
        click.option(
            "--steps", type=click.IntRange(min=1), default=DEFAULTS.steps, show_default=True
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=2),
            default=DEFAULTS.batch_size,
            show_default=True,
            help="Images per step, half source and half target.",
        ),
        click.option(
            "--learning-rate",
            type=float,
            default=DEFAULTS.learning_rate,
            show_default=True,
            help="mu0 of mu_p = mu0 / (1 + alpha p)^beta.",
        ),
        click.option("--lr-alpha", type=float, default=DEFAULTS.lr_alpha, show_default=True),
        click.option("--lr-beta", type=float, default=DEFAULTS.lr_beta, show_default=True),
        click.option("--momentum", type=float, default=DEFAULTS.momentum, show_default=True),
        click.option(
            "--gamma",
            type=float,
            default=DEFAULTS.gamma,
            show_default=True,
            help="lambda_p = lambda_max (2 / (1 + exp(-gamma p)) - 1).",
        ),
        click.option("--lambda-max", type=float, default=DEFAULTS.lambda_max, show_default=True),
        click.option(
            "--batch-norm/--no-batch-norm", default=DEFAULTS.batch_norm, show_default=True
        ),
        click.option(
            "--grayscale/--no-grayscale",
            default=DEFAULTS.grayscale,
            show_default=True,
            help="Convert to luminance inside the network (and the export).",
        ),
        click.option(
            "--dark-background/--any-background",
            default=DEFAULTS.dark_background,
            show_default=True,
            help="Invert light-background images inside the network (and the export).",
        ),
        click.option(
            "--augment/--no-augment",
            default=DEFAULTS.augment,
            show_default=True,
            help="Random shifts of up to 10% for both domains while training.",
        ),
        click.option(
            "--weight-decay", type=float, default=DEFAULTS.weight_decay, show_default=True
        ),
        click.option(
            "--clip-norm",
            type=click.FloatRange(min=0.0),
            default=DEFAULTS.clip_norm,
            show_default=True,
            help="Largest global gradient norm of a step (0: no clipping).",
        ),
        click.option(
            "--average-decay",
            type=float,
            default=DEFAULTS.average_decay,
            show_default=True,
            help="Decay of the weight average that is evaluated and exported (0: the raw weights).",
        ),
        click.option(
            "--eval-every",
            type=click.IntRange(min=1),
            default=DEFAULTS.eval_every,
            show_default=True,
            help="Steps between metrics rows and checkpoints.",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help=DATA_DIR_HELP,
        ),
        click.option("--download", is_flag=True, help=DOWNLOAD_HELP),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _download(names: list[str], data_dir: str | Path | None, quiet: bool = False) -> None:
    """``--download``: fetch the named data sets' files, or fail with one line."""
    from dann_serve.data import DatasetError
    from dann_serve.data.download import download_datasets

    try:
        download_datasets(names, Path(data_dir) if data_dir else None, progress=not quiet)
    except DatasetError as error:
        _fail(str(error))


def _config(data_dir: Path | None, **options) -> TrainConfig:
    try:
        return TrainConfig(**options, data_dir=str(data_dir) if data_dir else None)
    except ValueError as error:
        _fail(str(error), 2)


@main.command()
@training_options
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default=DEFAULTS.mode,
    show_default=True,
    help="source-only: same network, lambda = 0.",
)
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
def train(
    out: Path, resume: bool, quiet: bool, data_dir: Path | None, download: bool, **options
) -> None:
    """Train a DANN (or its source-only baseline) and write a run directory."""
    load_tensorflow()
    from dann_serve.data import DatasetError
    from dann_serve.training.loop import train_run
    from dann_serve.training.rundir import RunError, load_config

    config = _config(data_dir, **options)
    try:
        if download:  # --resume trains on the run's saved data sets, so fetch those
            chosen = load_config(out) if resume else config
            _download([chosen.source, chosen.target], chosen.data_dir, quiet)
        summary = train_run(config, out, resume=resume, show_progress=not quiet)
    except (RunError, DatasetError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        _fail(
            f"interrupted; progress is saved, continue with: dann-serve train --out {out} --resume",
            130,
        )
    click.echo(
        f"{out}: step {summary['step']}, source test accuracy "
        f"{summary['source_test_accuracy']:.4f}, target test accuracy "
        f"{summary['target_test_accuracy']:.4f}, domain accuracy {summary['domain_accuracy']:.4f}"
    )


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="Data set to evaluate on, e.g. digits.")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=DATA_DIR_HELP
)
@click.option("--download", is_flag=True, help=DOWNLOAD_HELP)
def evaluate(run: Path, dataset: str, split: str, data_dir: Path | None, download: bool) -> None:
    """Print the label accuracy of RUN's latest checkpoint on a data set split."""
    if download:
        _download([dataset], data_dir)
    load_tensorflow()
    from dann_serve.data import DatasetError
    from dann_serve.training.evaluation import evaluate_run
    from dann_serve.training.rundir import RunError

    try:
        value = evaluate_run(run, dataset, split, data_dir)
    except (RunError, DatasetError) as error:
        _fail(str(error))
    click.echo(f"{run}: {dataset} {split} accuracy {value:.4f}")


@main.command("reverse-validate")
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
            _error(str(error))
            failed = True
            continue
        click.echo(f"{run}: reverse validation {score:.4f}")
    if failed:
        raise SystemExit(1)


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
)
@click.option("--name", default="dann", show_default=True, help="Model name under --model-dir.")
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    default=None,
    help="Version number [default: the next free one].",
)
@click.option("--force", is_flag=True, help="Replace an existing version.")
def export(run: Path, model_dir: Path, name: str, version: int | None, force: bool) -> None:
    """Export RUN as a SavedModel (+ ONNX, warm-up, export.json) under MODEL_DIR/NAME/VERSION."""
    load_tensorflow()
    from dann_serve.export.savedmodel import ExportError, export_run
    from dann_serve.training.rundir import RunError

    try:
        result = export_run(run, model_dir, name, version, force)
    except (ExportError, RunError) as error:
        _fail(str(error))
    click.echo(result.path)


@main.command()
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
    help="Tree of <name>/<version>/ SavedModels, as TF Serving reads it.",
)
@click.option(
    "--model-config-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="model_config_list text proto [default: MODEL_DIR/models.config"
    " if it exists, else every model in MODEL_DIR].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 exposes the server to the network.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8500,
    show_default=True,
    help="gRPC port (0: any free port).",
)
@click.option(
    "--rest-port",
    type=click.IntRange(0, 65535),
    default=8501,
    show_default=True,
    help="REST port (0: no REST, as TensorFlow Serving).",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="How often to look for new versions on disk.",
)
@click.option(
    "--max-message-mb",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Largest gRPC message or REST body accepted.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM certificate chain: serve gRPC over TLS.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
)
def serve(
    model_dir: Path,
    model_config_file: Path | None,
    host: str,
    port: int,
    rest_port: int,
    poll_seconds: float,
    max_message_mb: int,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Serve MODEL_DIR over TensorFlow Serving's gRPC and REST APIs until SIGINT/SIGTERM."""
    if bool(tls_cert) != bool(tls_key):
        _fail("--tls-cert and --tls-key go together", 2)
    load_tensorflow()
    from dann_serve.serving.registry import ConfigError
    from dann_serve.serving.server import ServeOptions
    from dann_serve.serving.server import serve as run_server

    options = ServeOptions(
        model_dir=model_dir,
        host=host,
        port=port,
        rest_port=rest_port,
        config_file=model_config_file,
        poll_seconds=poll_seconds,
        max_message_bytes=max_message_mb * 1024 * 1024,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    try:
        run_server(options)
    except (ConfigError, OSError) as error:
        _fail(str(error))


@main.command()
@click.option("--dataset", default="digits", show_default=True)
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--count", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def samples(dataset: str, split: str, count: int, data_dir: Path | None, out: Path) -> None:
    """Write COUNT images of a data set as PNG files (true label in each name)."""
    from dann_serve.data import DatasetError
    from dann_serve.data.samples import write_samples

    try:
        paths = write_samples(dataset, out, count, split, str(data_dir) if data_dir else None)
    except DatasetError as error:
        _fail(str(error))
    click.echo(f"{out}: {len(paths)} {dataset} {split} images")


@main.command()
@training_options
@click.option(
    "--seeds",
    default="0,1,2",
    show_default=True,
    callback=_parse_seeds,
    help="Comma-separated seeds; both modes run for each.",
)
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
def compare(
    seeds: list[int],
    out: Path,
    report: Path | None,
    quiet: bool,
    data_dir: Path | None,
    download: bool,
    **options,
) -> None:
    """Train source-only and DANN with identical settings per seed; print the table."""
    base = _config(data_dir, **options)
    if download:
        _download([base.source, base.target], base.data_dir, quiet)
    load_tensorflow()
    from dann_serve.data import DatasetError
    from dann_serve.experiments.compare import pair_table, run_pair
    from dann_serve.training.rundir import RunError

    try:
        summaries = run_pair(base, seeds, out, show_progress=not quiet)
    except (RunError, DatasetError) as error:
        _fail(str(error))
    table, _ = pair_table(summaries)
    click.echo(table)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(f"## {base.source} -> {base.target}\n\n{table}\n")


def _parse_pairs(
    context: click.Context, parameter: click.Parameter, value: str
) -> list[tuple[str, str]]:
    pairs = []
    for part in value.split(","):
        source, colon, target = part.strip().partition(":")
        if not (colon and source and target):
            raise click.BadParameter(f"expected SOURCE:TARGET[,SOURCE:TARGET...], got {part!r}")
        pairs.append((source, target))
    return pairs


@main.command()
@click.option(
    "--runs",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/compare"),
    show_default=True,
    help="The --out folder of dann-serve compare (<source>-<target>/<mode>-seed<N>/).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/RESULTS.md"),
    show_default=True,
    help="Document to write; only the text between its results markers is replaced.",
)
@click.option(
    "--pairs",
    default="usps:mnist,mnist:usps,fonts:digits,fonts:mnist",
    show_default=True,
    callback=_parse_pairs,
    help="SOURCE:TARGET pairs, in order.",
)
@click.option(
    "--seeds",
    default="0,1,2",
    show_default=True,
    callback=_parse_seeds,
    help="Seeds each pair should have; absent ones are listed as missing.",
)
@click.option(
    "--figures",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the PNG figures [default: results/ beside --out].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder for the feature pictures and data notes "
    "[default: each run's own --data-dir].",
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
    out: Path,
    pairs: list[tuple[str, str]],
    seeds: list[int],
    figures: Path | None,
    data_dir: Path | None,
    feature_images: int,
    tsne: bool,
) -> None:
    """Write the results document from the finished runs under RUNS (trains nothing)."""
    from dann_serve.experiments.markdown import ReportError
    from dann_serve.experiments.results_page import generate_report

    if not runs.is_dir():
        _fail(
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
        _fail(str(error))
    click.echo(
        f"{outcome.document}: {len(outcome.pairs)} pair(s), {len(outcome.figures)} figure(s)"
    )


if __name__ == "__main__":
    main()

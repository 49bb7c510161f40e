"""What every ``dann-serve`` command shares: one-line errors with their exit statuses,
and the options of the training commands (their defaults come from TrainConfig).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click
from click.core import ParameterSource

from dann_serve.config import (
    ARCHITECTURES,
    CRITERIA,
    DEFAULT_CRITERION,
    DISTRIBUTE,
    PRECISIONS,
    TrainConfig,
)
from dann_serve.training.methods import get_method, method_names

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

DEFAULTS = TrainConfig()
DATA_DIR_HELP = (
    "Folder holding the files of file-based data sets, each in <data-dir>/<name>/ "
    "[default: $DANN_DATA_DIR or ~/.cache/dann-serve/data]."
)
DOWNLOAD_HELP = "First fetch missing mnist/svhn files into the data folder (md5-checked)."


def parse_seeds(context: click.Context, parameter: click.Parameter, value: str) -> list[int]:
    try:
        seeds = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not seeds:
        raise click.BadParameter("name at least one seed")
    return seeds


def report_error(message: str) -> None:
    click.echo(f"dann-serve: error: {message}", err=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    report_error(message)
    sys.exit(code)


def parse_pairs(
    context: click.Context, parameter: click.Parameter, value: str
) -> list[tuple[str, str]]:
    pairs = []
    for part in value.split(","):
        source, colon, target = part.strip().partition(":")
        if not (colon and source and target):
            raise click.BadParameter(f"expected SOURCE:TARGET[,SOURCE:TARGET...], got {part!r}")
        pairs.append((source, target))
    return pairs


FOLDER = click.Path(file_okay=False, path_type=Path)


def model_dir_option(help: str | None = None) -> Callable:
    """``--model-dir``: the tree of ``<name>/<version>/`` SavedModels, ``models`` by
    default, as export writes it and the servers read it."""
    return click.option(
        "--model-dir", type=FOLDER, default=Path("models"), show_default=True, help=help
    )


def data_dir_option(help: str = DATA_DIR_HELP) -> Callable:
    """``--data-dir``: where file-based data sets are found."""
    return click.option("--data-dir", type=FOLDER, default=None, help=help)


def seeds_option(help: str) -> Callable:
    """``--seeds 0,1,2``, parsed into a list of integers."""
    return click.option(
        "--seeds", default="0,1,2", show_default=True, callback=parse_seeds, help=help
    )


def criterion_option() -> Callable:
    """``--criterion``: the label-free score that ranks the candidates of ``--select``
    (``train --select`` and ``compare --select`` offer the same choice)."""
    return click.option(
        "--criterion",
        type=click.Choice(CRITERIA),
        default=DEFAULT_CRITERION,
        show_default=True,
        help="Label-free score that ranks the candidates of --select.",
    )


def candidate_line(row: dict, criterion: str, width: int = 12) -> str:
    """One candidate of a finished selection or adaptation: its score by ``criterion``,
    the kept one starred, and whether the class-share guard passed it over."""
    line = (
        f"{'*' if row['chosen'] else ' '} {row['name']:<{width}} {criterion} "
        f"{row['scores'][criterion]:+.4f}  ({row['description']})"
    )
    if row.get("passed_over"):
        line += (
            f"; passed over: its predicted class shares stand {row['class_shift']:.3f} "
            "from the source's, further than the fallback's"
        )
    return line


def methods_help() -> str:
    """``--method``'s help: every registered method, a paragraph each."""
    described = [f"{name}: {get_method(name).description}." for name in method_names()]
    return "\n\n".join(["How the domains are brought together:", *described])


# The options every training command shares; defaults come from TrainConfig.
TRAINING_OPTIONS = [
    click.option(
        "--source",
        default=DEFAULTS.source,
        show_default=True,
        help="Labelled source: a data set name, or a folder with one subfolder per digit (0-9).",
    ),
    click.option(
        "--target",
        default=DEFAULTS.target,
        show_default=True,
        help="Target: a data set name, or a folder of images, labelled or not (labels are "
        "only reported). ./NAME is the folder where NAME is also a data set.",
    ),
    click.option(
        "--source-test",
        type=FOLDER,
        default=None,
        help="Labelled folder to report source accuracy on [default: the data set's test "
        "split, or 1 image in 10 of a source folder, held out].",
    ),
    click.option(
        "--target-test",
        type=FOLDER,
        default=None,
        help="Labelled folder to report target accuracy on [default: the data set's test "
        "split; without one, the target accuracy is unknown].",
    ),
    click.option(
        "--skip-unreadable",
        is_flag=True,
        help="Train without image files that cannot be read (each is listed in config.json) "
        "instead of stopping.",
    ),
    click.option(
        "--arch",
        type=click.Choice(ARCHITECTURES),
        default=DEFAULTS.arch,
        show_default=True,
        help="Network of Ganin et al. 2016.",
    ),
    click.option(
        "--method",
        type=click.Choice(method_names()),
        default=DEFAULTS.method,
        show_default=True,
        help=methods_help(),
    ),
    click.option("--steps", type=click.IntRange(min=1), default=DEFAULTS.steps, show_default=True),
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
        "--information-weight",
        type=click.FloatRange(min=0.0),
        default=DEFAULTS.information_weight,
        show_default=True,
        help="Weight of information maximisation on target predictions (confident each, "
        "spread over the classes), ramped like lambda; 0: off (and always off for a "
        "method without a reversal).",
    ),
    click.option("--batch-norm/--no-batch-norm", default=DEFAULTS.batch_norm, show_default=True),
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
        "--shift-ramp/--no-shift-ramp",
        default=DEFAULTS.shift_ramp,
        show_default=True,
        help="Grow the shifts in from none, like lambda (full size from mid-run).",
    ),
    click.option("--weight-decay", type=float, default=DEFAULTS.weight_decay, show_default=True),
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
        "--distribute",
        type=click.Choice(DISTRIBUTE),
        default=DEFAULTS.distribute,
        show_default=True,
        help="none: one device. mirrored: every GPU of this machine (tf.distribute."
        "MirroredStrategy). multi-worker: the machines of $TF_CONFIG (MultiWorkerMirrored"
        "Strategy); the chief writes the run directory. --batch-size stays the global "
        "batch. A run resumes under any strategy.",
    ),
    click.option(
        "--cpu-replicas",
        type=click.IntRange(min=0),
        default=DEFAULTS.cpu_replicas,
        show_default=True,
        help="With --distribute mirrored on a machine without GPUs: split the CPU into N "
        "logical devices, one replica each (0: the whole CPU as one replica).",
    ),
    click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default="auto",
        show_default=True,
        help="Compute dtype of the training model (Keras policy); variables, losses and "
        "the exported signatures stay float32. auto: mixed_bfloat16 on a CPU with "
        "bfloat16 instructions (AVX512-BF16, AMX), float32 elsewhere.",
    ),
    data_dir_option(),
    click.option("--download", is_flag=True, help=DOWNLOAD_HELP),
    click.option("--quiet", is_flag=True, help="No progress bar."),
]


def training_options(command: Callable) -> Callable:
    """Adds :data:`TRAINING_OPTIONS` to a command, in their order in ``--help``."""
    for option in reversed(TRAINING_OPTIONS):
        command = option(command)
    return command


def fetch_data(names: list[str], data_dir: str | Path | None, quiet: bool = False) -> None:
    """``--download``: fetch the named data sets' files, or fail with one line."""
    from dann_serve.data import DatasetError
    from dann_serve.data.download import download_datasets

    try:
        download_datasets(names, Path(data_dir) if data_dir else None, progress=not quiet)
    except DatasetError as error:
        fail(str(error))


def train_config(data_dir: Path | None, **options) -> TrainConfig:
    """The options as a run records them: folders as absolute paths."""
    from dann_serve.data import canonical

    for name in ("source", "target"):
        options[name] = canonical(str(options[name]))
    for name in ("source_test", "target_test"):  # always folders, whatever their name
        if options.get(name) is not None:
            options[name] = str(Path(options[name]).expanduser().resolve())
    try:
        return TrainConfig(**options, data_dir=str(data_dir) if data_dir else None)
    except ValueError as error:
        fail(str(error), EXIT_USAGE)


def given_on_command_line(config: TrainConfig) -> dict:
    """The options of ``config`` the user typed (not defaults), by field name."""
    context = click.get_current_context()
    given = {}
    for name, value in vars(config).items():
        source = context.get_parameter_source(name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            given[name] = value
    if context.params.get("precision") == "auto":  # asks for no dtype: the run's stands
        given.pop("precision", None)
    return given

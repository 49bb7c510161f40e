"""A training run on disk: config, metrics, TensorBoard events, checkpoints, summary, plots.

Files are written so that an interruption at any moment leaves a run that
``--resume`` can continue: JSON files are replaced atomically, metrics rows are
flushed as they are logged, and checkpoints go through tf.train.CheckpointManager,
whose index names a checkpoint only once its files are complete.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

from dann_serve.config import TrainConfig
from dann_serve.data import Domain
from dann_serve.files import write_atomically
from dann_serve.runtime import package_versions
from dann_serve.training.methods import get_method

METRIC_FIELDS = (
    "step",
    "label_loss",
    "domain_loss",
    "lambda",
    "learning_rate",
    "source_accuracy",
    "target_accuracy",
    "domain_accuracy",
)
CHECKPOINTS = "checkpoints"


class RunError(Exception):
    """A run directory cannot be used as asked; the message says why and what to do."""


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path.parent}: not a training run ({path.name} is missing)") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None


def load_config(run_dir: Path) -> TrainConfig:
    return saved_config(read_json(run_dir / "config.json")["options"], run_dir)


def saved_config(options: dict, where: Path) -> TrainConfig:
    """The options a run (or a selection) in ``where`` saved, its method among the
    registered ones; RunError saying what to do otherwise."""
    try:
        config = TrainConfig.from_dict(options)
        get_method(config.method)
    except ValueError as error:
        raise RunError(f"{where}: {error}") from None
    return config


def read_metrics(path: Path, up_to_step: int | None = None) -> list[dict]:
    """The rows of a metrics.csv as strings by column ([] if there is no file yet),
    only those up to ``up_to_step`` if given."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = csv.DictReader(handle)
        if up_to_step is None:
            return list(rows)
        return [row for row in rows if int(row["step"]) <= up_to_step]


class MetricsLog:
    """metrics.csv plus the same scalars as TensorBoard events under ``tensorboard/``."""

    def __init__(self, run_dir: Path, keep_up_to_step: int) -> None:
        import tensorflow as tf  # here, not on top: reading a run (report) needs none

        self.path = run_dir / "metrics.csv"
        # The rows up to the resumed step are rewritten into a new file that then
        # replaces the old one, so a kill at any moment leaves a complete history.
        kept = io.StringIO(newline="")
        writer = csv.DictWriter(kept, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(read_metrics(self.path, keep_up_to_step))
        write_atomically(self.path, kept.getvalue())
        self._tf_summary = tf.summary
        self.handle = self.path.open("a", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=METRIC_FIELDS)
        self.events = self._tf_summary.create_file_writer(str(run_dir / "tensorboard"))

    def log(self, row: dict) -> None:
        self.writer.writerow(row)
        self.handle.flush()
        with self.events.as_default(step=int(row["step"])):
            for name, value in row.items():
                if name != "step" and value is not None:
                    self._tf_summary.scalar(name, value)
        self.events.flush()

    def close(self) -> None:
        self.handle.close()
        self.events.close()


def check_run_dir(config: TrainConfig, run_dir: Path, resume: bool, chief: bool) -> TrainConfig:
    """The options to train with (the saved ones when resuming); ``RunError`` for
    nothing to resume, or a run in the way of a new one (which only the chief, the one
    that writes the run, can see: the others may start after it made the directory)."""
    import tensorflow as tf

    has_checkpoint = tf.train.latest_checkpoint(str(run_dir / CHECKPOINTS)) is not None
    if resume:
        if not (run_dir / "config.json").exists():
            raise RunError(f"{run_dir}: nothing to resume (no config.json, no checkpoint)")
        # Without a checkpoint (killed before the first one) the run starts over from
        # step 0 with its saved options: nothing of it was kept, so nothing is lost.
        # Only where the data lies (the files moved, the same data) and where the run
        # executes (this process's strategy) may change.
        saved = load_config(run_dir)
        try:
            return dataclasses.replace(
                saved,
                data_dir=config.data_dir or saved.data_dir,
                distribute=config.distribute,
                cpu_replicas=config.cpu_replicas,
            )
        except ValueError as error:
            raise RunError(f"{run_dir}: {error}") from None
    if chief and (has_checkpoint or (run_dir / "config.json").exists()):
        raise RunError(
            f"{run_dir}: a run already exists there; pass --resume to continue it "
            "or choose another --out"
        )
    return config


def run_record(config: TrainConfig, source: Domain, target: Domain, placement: dict) -> dict:
    """config.json: the options, the package versions, the data of the run and where
    it trained (its latest session's strategy, replica and worker count)."""

    def described(domain: Domain) -> dict:
        return {
            "name": domain.name,
            "train": len(domain.train),
            "test": len(domain.test),
            "test_labelled": domain.test.labelled,
            "note": domain.note,
            "skipped": list(domain.skipped),
            "test_files": list(domain.test_files),
        }

    return {
        "options": {**vars(config)},
        "versions": package_versions(),
        "data": {"source": described(source), "target": described(target)},
        "distribution": {"strategy": config.distribute, **placement},
    }

"""A training run on disk: config, metrics, TensorBoard events, checkpoints, summary, plots.

Files are written so that an interruption at any moment leaves a run that
``--resume`` can continue: JSON files are replaced atomically, metrics rows are
flushed as they are logged, and checkpoints go through tf.train.CheckpointManager,
whose index names a checkpoint only once its files are complete.
"""

from __future__ import annotations

import csv
import json
import os
import platform
from pathlib import Path

import tensorflow as tf

from dann_serve.config import TrainConfig

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


def write_json(path: Path, payload: dict) -> None:
    """Replace ``path`` atomically, so a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path.parent}: not a training run ({path.name} is missing)") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("dann-serve", "tensorflow", "keras", "numpy", "pillow", "scikit-learn"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def load_config(run_dir: Path) -> TrainConfig:
    return TrainConfig.from_dict(read_json(run_dir / "config.json")["options"])


def read_metrics(path: Path, up_to_step: int) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) <= up_to_step]


class MetricsLog:
    """metrics.csv plus the same scalars as TensorBoard events under ``tensorboard/``."""

    def __init__(self, run_dir: Path, keep_up_to_step: int) -> None:
        self.path = run_dir / "metrics.csv"
        # The rows up to the resumed step are rewritten into a new file that then
        # replaces the old one, so a kill at any moment leaves a complete history.
        kept = read_metrics(self.path, keep_up_to_step)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_FIELDS)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(temporary, self.path)
        self.handle = self.path.open("a", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=METRIC_FIELDS)
        self.events = tf.summary.create_file_writer(str(run_dir / "tensorboard"))

    def log(self, row: dict) -> None:
        self.writer.writerow(row)
        self.handle.flush()
        with self.events.as_default(step=int(row["step"])):
            for name, value in row.items():
                if name != "step":
                    tf.summary.scalar(name, value)
        self.events.flush()

    def close(self) -> None:
        self.handle.close()
        self.events.close()

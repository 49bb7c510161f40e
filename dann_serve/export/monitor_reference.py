"""The live monitor's reference, written into every version beside its warm-up records:
``assets.extra/monitor_reference.json`` (:mod:`dann_serve.drift.reference`'s format).

Which images, and why:

- **the target's training images**, the very images the run adapted to (a data set's
  train split, or the target folder less any test files held out of it), a sample of
  at most :data:`~dann_serve.drift.reference.MAX_TARGET_IMAGES` drawn with the run's
  seed. Traffic from the domain the model was adapted to is what "not shifted" means,
  so the drift test holds each window to the model's outputs on these images. The
  target's test split is no better a stand-in: an unlabelled folder's is a sample of
  the same folder, and a data set's is what the parity checks and the reported
  accuracy already spend.
- **the source's held-out labelled images**, as the run tested on them (a data set's
  test split, the ``--source-test`` folder, or the 1 image in 10 held out of a
  labelled source folder): the only labels adaptation has, on images the model never
  trained on (on its training images it is more confident and more often right than
  on any new image). ATC's threshold is fitted on them.

A run whose data cannot be read here (the export runs where the source's files are
absent, a folder since moved) is still exported: the reference is skipped with one
warning line, ``export.json`` says why, and the server reports that version without
an accuracy estimate or drift test.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dann_serve import data
from dann_serve.config import TrainConfig
from dann_serve.drift import reference
from dann_serve.export.checks import exported_probabilities
from dann_serve.training.rundir import read_json

log = logging.getLogger("dann_serve.export")


def _images(run_dir: Path, config: TrainConfig) -> tuple[np.ndarray, data.Split]:
    """The target's training images and the source's held-out labelled test split, as
    the run read them; ``DatasetError`` when either cannot be read or has no labels."""
    target = data.load_domain(
        config.target,
        config.data_dir,
        config.target_test,
        role="target",
        skip_unreadable=config.skip_unreadable,
    ).train.images
    recorded = read_json(run_dir / "config.json")["data"]["source"]
    source = data.load_test_split(
        config.source,
        config.data_dir,
        config.source_test,
        files=recorded.get("test_files"),
        skip_unreadable=config.skip_unreadable,
    )
    if not source.labelled:
        raise data.DatasetError(f"{config.source}: its held-out test images have no labels")
    if len(target) == 0:
        raise data.DatasetError(f"{config.target}: no training images")
    return target, source


def write_monitor_reference(saved, run_dir: Path, config: TrainConfig, version_dir: Path) -> dict:
    """Write the reference of the SavedModel ``saved`` under ``version_dir``; its entry
    in ``export.json`` (the file and its figures, or why it was skipped)."""
    try:
        target, source = _images(run_dir, config)
        chosen = reference.sample_indices(len(target), reference.MAX_TARGET_IMAGES, config.seed)
        built = reference.build_reference(
            exported_probabilities(saved, target[chosen]),
            exported_probabilities(saved, source.images),
            source.labels,
            seed=config.seed,
        )
    except (data.DatasetError, ValueError) as error:
        log.warning(
            "no monitor reference: %s (the monitor will report no accuracy estimate "
            "and no drift test for this version)",
            error,
        )
        return {"file": None, "skipped": str(error)}
    (version_dir / reference.VERSION_PATH).parent.mkdir(parents=True, exist_ok=True)
    reference.save(built, version_dir / reference.VERSION_PATH)
    return {
        "file": str(reference.VERSION_PATH),
        "target_images": len(built.probabilities),
        "target_training_images": len(target),
        "seed": built.seed,
        "source_images": built.source_images,
        "source_accuracy": built.source_accuracy,
        "atc_score": built.score,
        "atc_threshold": built.threshold,
    }

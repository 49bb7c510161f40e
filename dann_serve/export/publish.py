"""Export a run as TensorFlow Serving loads it: ``models/<name>/<version>/``.

The version directory is built beside its final place under a name TensorFlow
Serving ignores (not an integer) and renamed into place only once the SavedModel
(:mod:`~dann_serve.export.signatures`), its warm-up records
(:mod:`~dann_serve.export.warmup`), the live monitor's reference
(:mod:`~dann_serve.export.monitor_reference`), the ONNX twins (:mod:`~dann_serve.export.onnx`)
and the parity checks (:mod:`~dann_serve.export.checks`) are all done. A failure
anywhere, or a kill, therefore never leaves a version a server would try to load.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from dann_client.contract import DEFAULT_MODEL, ONNX_DIR
from dann_client.preprocessing import layout_batch, to_model_input
from dann_serve import data
from dann_serve.config import TrainConfig
from dann_serve.export.checks import (
    ONNX_TOLERANCE,
    PARITY_IMAGES,
    SERVED_TOLERANCE,
    ExportError,
    agrees,
    exported_accuracy,
    exported_class_shares,
    metagraph_parity,
)
from dann_serve.export.monitor_reference import write_monitor_reference
from dann_serve.export.onnx import (
    ONNX_OPSET,
    ONNX_SIGNATURES,
    WITHOUT_ONNX,
    convert_to_onnx,
    onnx_parity,
)
from dann_serve.export.signatures import ServingModule, save_savedmodel, signatures_report
from dann_serve.export.warmup import write_warmup
from dann_serve.files import write_json
from dann_serve.runtime import EXPORT_PACKAGES, package_versions
from dann_serve.serving.loader import WARMUP_FILE
from dann_serve.serving.model_config import CONFIG_FILE, add_model_to_config, version_number
from dann_serve.training.evaluation import restore_model
from dann_serve.training.rundir import load_config, read_json


@dataclass(frozen=True)
class ExportResult:
    path: Path
    report: dict


def next_version(model_root: Path) -> int:
    """One more than the largest version directory (1 for a new model); folders that
    are no version (``version_number``) are skipped, as the server skips them."""
    names = [p.name for p in model_root.glob("*") if p.is_dir()]
    versions = [v for v in map(version_number, names) if v is not None]
    return max(versions, default=0) + 1


def remove_abandoned_staging(model_root: Path) -> list[Path]:
    """Delete ``.staging-<version>-<pid>`` directories whose export process is gone.

    An export killed midway leaves its staging directory behind; servers ignore it,
    but each one holds a SavedModel and its ONNX files. ``.retired-*`` directories
    are kept: one left by a kill inside ``--force`` holds the only copy of the old
    version.
    """
    removed = []
    for entry in model_root.glob(".staging-*-*"):
        pid = entry.name.rsplit("-", 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid() or _process_alive(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


UNKNOWN_TARGET_ACCURACY = (
    "unknown: the target has no labels (train with --target-test DIR to measure it)"
)


def _target_test(run_dir: Path, config: TrainConfig) -> data.Split:
    """The run's target test split, as the run was tested (a data set's, the labelled
    folder of --target-test, or the files config.json lists of a test split carved out
    of the target folder): the images of the parity checks. Only these are read, so a
    file added to the training folder since, readable or not, changes nothing."""
    recorded = read_json(run_dir / "config.json")["data"]["target"]
    try:
        return data.load_test_split(
            config.target,
            config.data_dir,
            config.target_test,
            files=recorded.get("test_files"),
            skip_unreadable=config.skip_unreadable,
        )
    except data.DatasetError as error:
        raise ExportError(f"the target's test images (for the parity checks): {error}") from None


def _target_figures(saved, images: np.ndarray, test: data.Split) -> dict:
    """The exported model's target test accuracy; without target labels, None, the
    plain word that it is unknown, and the share of the test images given each class."""
    if test.labelled:
        return {"target_test_accuracy_exported": exported_accuracy(saved, images, test.labels)}
    return {
        "target_test_accuracy_exported": None,
        "target_accuracy": UNKNOWN_TARGET_ACCURACY,
        "target_predicted_classes_exported": exported_class_shares(saved, images),
    }


def _build(run_dir: Path, staging: Path, name: str, version: int) -> dict:
    """Write every file of the version into ``staging``, check them; the version's report."""
    config = load_config(run_dir)
    module = ServingModule(restore_model(run_dir))
    save_savedmodel(module, staging)
    test = _target_test(run_dir, config)
    pixels = layout_batch(test.images)
    warmup = write_warmup(staging / WARMUP_FILE, name, pixels)
    for signature in ONNX_SIGNATURES:
        convert_to_onnx(getattr(module, signature), staging / ONNX_DIR / f"{signature}.onnx")

    saved = tf.saved_model.load(str(staging))
    onnx_figures, served = _check(saved, staging, pixels[:PARITY_IMAGES])
    report = _report(run_dir, config, name, version)
    report.update(_target_figures(saved, to_model_input(pixels), test))
    worst = max(figures["max_abs_probability_difference"] for figures in onnx_figures.values())
    report["onnx"] = {
        "opset": ONNX_OPSET,
        "signatures": list(ONNX_SIGNATURES),
        "without_onnx": WITHOUT_ONNX,
        "parity": onnx_figures,
        "max_abs_difference": worst,
    }
    report["tf_serving_load"] = {"loader": "serve MetaGraph, saver restore", "parity": served}
    report["warmup_records"] = warmup
    report["monitor_reference"] = write_monitor_reference(saved, run_dir, config, staging)
    report["versions"] = package_versions(EXPORT_PACKAGES)
    return report


def _check(saved, staging: Path, pixels: np.ndarray) -> tuple[dict, dict]:
    """The ONNX twins and TensorFlow Serving's way of loading, each against the
    SavedModel (``predict_label``'s twins against ``predict_label``), on uint8
    ``pixels``; ``ExportError`` if either answers otherwise."""
    onnx_figures = onnx_parity(saved, staging / ONNX_DIR, pixels)
    if not agrees(onnx_figures, ONNX_TOLERANCE):
        raise ExportError(f"ONNX and SavedModel disagree: {onnx_figures}")
    served = metagraph_parity(saved, staging, pixels)
    if not agrees(served, SERVED_TOLERANCE):
        raise ExportError(
            f"loaded as TensorFlow Serving loads it, the model answers otherwise: {served}"
        )
    return onnx_figures, served


def _report(run_dir: Path, config: TrainConfig, name: str, version: int) -> dict:
    """What the version is: its run, options and accuracy at training, its signatures."""
    summary_path = run_dir / "summary.json"
    summary = read_json(summary_path) if summary_path.exists() else {}
    return {
        "model": name,
        "version": version,
        "run": str(run_dir.resolve()),
        "method": config.method,
        "arch": config.arch,
        "source": config.source,
        "target": config.target,
        "step": summary.get("step"),
        "accuracy_at_training": {
            "source_test": summary.get("source_test_accuracy"),
            "target_test": summary.get("target_test_accuracy"),
        },
        "signatures": signatures_report(),
        # Where an adapted run came from (dann-serve adapt); None for a first training.
        "lineage": read_json(run_dir / "config.json").get("lineage"),
    }


def exchange(first: Path, second: Path) -> bool:
    """Swap two directories in one step (Linux ``renameat2(RENAME_EXCHANGE)``).

    With it, ``--force`` replaces a version without the moment between two renames
    when the version is absent and a polling server would unload it. False where the
    kernel, C library or file system cannot; the caller then renames twice.
    """
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2  # <fcntl.h>, <linux/fs.h>
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange):
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            return False
        raise OSError(code, os.strerror(code), str(second))
    return True


def _put_in_place(staging: Path, final: Path) -> None:
    """Rename the finished ``staging`` to ``final``, replacing a version already there."""
    if not final.exists():
        os.rename(staging, final)
    elif not exchange(staging, final):  # else staging now holds the old version
        retired = final.parent / f".retired-{final.name}-{os.getpid()}"
        os.rename(final, retired)
        os.rename(staging, final)
        shutil.rmtree(retired)


def export_run(
    run_dir: str | Path,
    model_dir: str | Path = "models",
    name: str = DEFAULT_MODEL,
    version: int | None = None,
    force: bool = False,
) -> ExportResult:
    """Export ``run_dir``'s latest checkpoint as ``model_dir/name/version``."""
    run_dir, model_dir = Path(run_dir), Path(model_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run directory")
    if version is not None and version < 1:
        raise ExportError(f"--version must be a positive integer, got {version}")
    model_root = model_dir / name
    version = version if version is not None else next_version(model_root)
    final = model_root / str(version)
    if final.exists() and not force:
        raise ExportError(f"{final} already exists; pass --force to replace it")

    model_root.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(model_root)
    staging = model_root / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        report = _build(run_dir, staging, name, version)
        write_json(staging / "export.json", report)
        _put_in_place(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    add_model_to_config(model_dir / CONFIG_FILE, name)
    return ExportResult(final, report)

"""Export a run as TensorFlow Serving loads it: ``models/<name>/<version>/``.

The version directory is built beside its final place under a name TensorFlow
Serving ignores (not an integer) and renamed into place only once the SavedModel,
its warm-up records, the ONNX twins and the parity checks are all done. A failure
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

from dann_client.preprocessing import to_model_input
from dann_serve import data
from dann_serve.model.networks import DANN, INPUT_SHAPE
from dann_serve.serving.loader import MetaGraphModel
from dann_serve.serving.model_config import add_model_to_config
from dann_serve.training.evaluation import restore_model
from dann_serve.training.rundir import load_config, package_versions, read_json, write_json

INPUT_NAME = "images"
# Each signature's name and the name of its decision output (beside `probabilities`).
DECISIONS = {"predict_label": "label", "classify_domain": "domain"}
SIGNATURES = tuple(DECISIONS)
PARITY_IMAGES = 256
ONNX_OPSET = 17
IMAGES_SPEC = tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name=INPUT_NAME)


class ExportError(Exception):
    """The export cannot go on; nothing was left in the model directory."""


class ServingModule(tf.Module):
    """The two inference functions of a trained DANN, as served.

    Each signature runs only the heads it needs, in inference mode; the gradient
    reversal layer is not on either path, so nothing training-only is exported.
    """

    def __init__(self, model: DANN) -> None:
        super().__init__()
        self.model = model
        # Keras 3 keeps each tf.Variable inside a keras.Variable. Reached only through
        # those, the variables reach the object graph but not the MetaGraph's saver,
        # and TensorFlow Serving (which restores through the saver) answers every
        # request with "Could not find variable". Tracking the tf.Variables themselves
        # puts them in both; the export checks it (metagraph_parity).
        self.tf_variables = [weight.value for weight in model.weights]

    def _answer(self, head, images: tf.Tensor, decision: str) -> dict[str, tf.Tensor]:
        features = self.model.features(images, training=False)
        probabilities = tf.nn.softmax(head(features, training=False))
        return {
            "probabilities": probabilities,
            decision: tf.argmax(probabilities, axis=-1, output_type=tf.int64),
        }

    @tf.function(input_signature=[IMAGES_SPEC])
    def predict_label(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._answer(self.model.label_head, images, DECISIONS["predict_label"])

    @tf.function(input_signature=[IMAGES_SPEC])
    def classify_domain(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._answer(self.model.domain_head, images, DECISIONS["classify_domain"])


@dataclass(frozen=True)
class ExportResult:
    path: Path
    report: dict


def next_version(model_root: Path) -> int:
    """One more than the largest integer version directory (1 for a new model)."""
    versions = [int(p.name) for p in model_root.glob("*") if p.name.isdigit() and p.is_dir()]
    return max(versions, default=0) + 1


def remove_abandoned_staging(model_root: Path) -> list[Path]:
    """Delete ``.staging-<version>-<pid>`` directories whose export process is gone.

    An export killed midway leaves its staging directory behind; servers ignore it,
    but each one holds a SavedModel and two ONNX files. ``.retired-*`` directories
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


def _parity_images(target: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    test = data.load(target, data_dir).test
    return to_model_input(test.images), test.labels


def write_warmup(path: Path, model_name: str, images: np.ndarray) -> int:
    """TFRecord of PredictionLog records, batch 1 and a full batch, per signature."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature in SIGNATURES:
            for batch in (images[:1], images[:32]):
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature),
                    inputs={INPUT_NAME: tf.make_tensor_proto(batch)},
                )
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())
                count += 1
    return count


def convert_to_onnx(function, path: Path) -> None:
    """One signature to ONNX with tf2onnx, input and output names kept."""
    import onnx
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=[IMAGES_SPEC], opset=ONNX_OPSET
    )
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))


def parity(answer, saved, images: np.ndarray) -> dict[str, dict]:
    """Largest probability difference and decision agreement between
    ``answer(signature, images)`` and the SavedModel loaded by ``tf.saved_model.load``."""
    figures = {}
    for signature, decision in DECISIONS.items():
        got = answer(signature, images)
        want = {k: v.numpy() for k, v in saved.signatures[signature](images=images).items()}
        figures[signature] = {
            "images": len(images),
            "max_abs_probability_difference": float(
                np.max(np.abs(got["probabilities"] - want["probabilities"]))
            ),
            "decisions_agree": int(np.sum(got[decision] == want[decision])),
        }
    return figures


def agrees(figures: dict[str, dict], tolerance: float) -> bool:
    """Every decision equal and every probability within ``tolerance``, per signature."""
    return all(
        f["decisions_agree"] == f["images"] and f["max_abs_probability_difference"] <= tolerance
        for f in figures.values()
    )


def onnx_parity(saved, onnx_dir: Path, images: np.ndarray) -> dict[str, dict]:
    """ONNX Runtime on ``onnx/<signature>.onnx`` against the SavedModel."""
    import onnxruntime

    sessions = {
        signature: onnxruntime.InferenceSession(
            str(onnx_dir / f"{signature}.onnx"), providers=["CPUExecutionProvider"]
        )
        for signature in SIGNATURES
    }

    def answer(signature: str, images: np.ndarray) -> dict[str, np.ndarray]:
        session = sessions[signature]
        names = [output.name for output in session.get_outputs()]
        return dict(zip(names, session.run(None, {INPUT_NAME: images}), strict=True))

    return parity(answer, saved, images)


def metagraph_parity(saved, version_dir: Path, images: np.ndarray) -> dict[str, dict]:
    """The SavedModel loaded as TensorFlow Serving loads it, against ``tf.saved_model.load``.

    ``ExportError`` when that load or a signature fails: the version would be served
    by TensorFlow Serving as a model that answers nothing.
    """
    try:
        model = MetaGraphModel(version_dir)
    except (tf.errors.OpError, RuntimeError, ValueError) as error:
        raise ExportError(
            f"TensorFlow Serving's way of loading fails: {_first_line(error)}"
        ) from None
    try:
        return parity(
            lambda signature, batch: model.run(
                signature, {INPUT_NAME: batch}, ["probabilities", DECISIONS[signature]]
            ),
            saved,
            images,
        )
    except tf.errors.OpError as error:
        raise ExportError(
            f"the SavedModel loads but fails when run the way TensorFlow Serving runs it: "
            f"{_first_line(error)}"
        ) from None
    finally:
        model.close()


def _first_line(error: Exception) -> str:
    """The line of a TensorFlow error that says what went wrong (not its preamble)."""
    text = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if line != "Graph execution error:"]
    return lines[0] if lines else type(error).__name__


def exported_accuracy(saved, images: np.ndarray, labels: np.ndarray) -> float:
    predicted = np.concatenate(
        [
            saved.signatures["predict_label"](images=images[i : i + 500])["label"].numpy()
            for i in range(0, len(images), 500)
        ]
    )
    return float(np.mean(predicted == labels))


def _build(run_dir: Path, staging: Path, name: str, version: int) -> dict:
    config = load_config(run_dir)
    model = restore_model(run_dir)
    module = ServingModule(model)
    tf.saved_model.save(
        module,
        str(staging),
        signatures={
            "predict_label": module.predict_label,
            "classify_domain": module.classify_domain,
            "serving_default": module.predict_label,
        },
    )
    images, labels = _parity_images(config.target, config.data_dir)
    warmup = write_warmup(staging / "assets.extra" / "tf_serving_warmup_requests", name, images)
    for signature in SIGNATURES:
        convert_to_onnx(getattr(module, signature), staging / "onnx" / f"{signature}.onnx")

    saved = tf.saved_model.load(str(staging))
    onnx_figures = onnx_parity(saved, staging / "onnx", images[:PARITY_IMAGES])
    if not agrees(onnx_figures, 1e-5):
        raise ExportError(f"ONNX and SavedModel disagree: {onnx_figures}")
    served = metagraph_parity(saved, staging, images[:PARITY_IMAGES])
    if not agrees(served, 1e-6):
        raise ExportError(
            f"loaded as TensorFlow Serving loads it, the model answers otherwise: {served}"
        )
    worst = max(figures["max_abs_probability_difference"] for figures in onnx_figures.values())
    summary_path = run_dir / "summary.json"
    summary = read_json(summary_path) if summary_path.exists() else {}
    versions = package_versions()
    for package in ("tf2onnx", "onnx", "onnxruntime"):
        versions[package] = __import__(package).__version__
    return {
        "model": name,
        "version": version,
        "run": str(run_dir.resolve()),
        "mode": config.mode,
        "arch": config.arch,
        "source": config.source,
        "target": config.target,
        "step": summary.get("step"),
        "accuracy_at_training": {
            "source_test": summary.get("source_test_accuracy"),
            "target_test": summary.get("target_test_accuracy"),
        },
        "target_test_accuracy_exported": exported_accuracy(saved, images, labels),
        "signatures": {
            **{
                signature: {"inputs": [INPUT_NAME], "outputs": ["probabilities", decision]}
                for signature, decision in DECISIONS.items()
            },
            "serving_default": "predict_label",
        },
        "onnx": {"opset": ONNX_OPSET, "parity": onnx_figures, "max_abs_difference": worst},
        "tf_serving_load": {"loader": "serve MetaGraph, saver restore", "parity": served},
        "warmup_records": warmup,
        "versions": versions,
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


def export_run(
    run_dir: str | Path,
    model_dir: str | Path = "models",
    name: str = "dann",
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
        if final.exists():
            if not exchange(staging, final):  # now staging holds the old version
                retired = model_root / f".retired-{version}-{os.getpid()}"
                os.rename(final, retired)
                os.rename(staging, final)
                shutil.rmtree(retired)
        else:
            os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    add_model_to_config(model_dir / "models.config", name)
    return ExportResult(final, report)

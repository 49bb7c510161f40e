"""The checks a version passes before it is published: every way it will be run answers
as the SavedModel does.

:func:`parity` compares any runner with ``tf.saved_model.load``; the ONNX twins are
compared in :mod:`dann_serve.export.onnx`, and :func:`metagraph_parity` loads the
version the way TensorFlow Serving does, which is what ``dann-serve serve`` does too
(:mod:`dann_serve.serving.loader`). Each signature is held to the answers of the one
its row says it answers as: ``predict_label``'s twins (uint8 pixels, image files) to
``predict_label``'s own answers on the same pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf

from dann_client.contract import (
    EXPORTED_SIGNATURES,
    INPUT_NAME,
    NUM_CLASSES,
    PREDICT_LABEL,
    PROBABILITIES_OUTPUT,
    SIGNATURE_ROWS,
)
from dann_client.preprocessing import to_model_input
from dann_serve.export.signatures import example_inputs
from dann_serve.serving.loader import MetaGraphModel

PARITY_IMAGES = 256
# The largest probability difference allowed between ONNX and SavedModel, every decision
# equal besides. Both run float32, with ops fused and ordered differently, so a very
# confident model's probabilities differ by rounding: 1.07e-5 on a 300-step usps ->
# mnist-texture model, whose export a bound of 1e-5 refused. A conversion that is wrong
# moves probabilities by far more, and decisions with them.
ONNX_TOLERANCE = 1e-4
SERVED_TOLERANCE = 1e-6  # the same between TF Serving's way of loading and the SavedModel
# predict_label's twins (uint8, encoded images) reach the same network by another graph
# (the division by 255 inside it), which TensorFlow's optimiser fuses differently: their
# probabilities differ from predict_label's by float32 rounding (1.2e-6 measured on a
# fonts -> digits model), so they are held to the ONNX bound, with every decision equal.
TWIN_TOLERANCE = ONNX_TOLERANCE


class ExportError(Exception):
    """The export cannot go on; nothing was left in the model directory."""


def parity(answer, saved, pixels: np.ndarray, signatures: Iterable[str]) -> dict[str, dict]:
    """Largest probability difference and decision agreement between
    ``answer(signature, inputs)`` and the SavedModel loaded by ``tf.saved_model.load``.

    Every signature is given the same uint8 ``pixels`` in the form it takes
    (:func:`~dann_serve.export.signatures.example_inputs`), and compared with the
    SavedModel's answer to the question it answers: ``predict_label`` on pixels / 255
    for ``predict_label`` and its twins, ``classify_domain`` for itself.
    """
    references: dict[str, dict[str, np.ndarray]] = {}
    figures = {}
    for signature in signatures:
        reference = SIGNATURE_ROWS[signature].answers_as
        if reference not in references:
            outputs = saved.signatures[reference](images=example_inputs(reference, pixels))
            references[reference] = {k: v.numpy() for k, v in outputs.items()}
        want, decision = references[reference], SIGNATURE_ROWS[reference].answer_output
        got = answer(signature, example_inputs(signature, pixels))
        figures[signature] = {
            "images": len(pixels),
            "compared_with": reference,
            "max_abs_probability_difference": float(
                np.max(np.abs(got[PROBABILITIES_OUTPUT] - want[PROBABILITIES_OUTPUT]))
            ),
            "decisions_agree": int(np.sum(got[decision] == want[decision])),
        }
    return figures


def agrees(figures: dict[str, dict], tolerance: float) -> bool:
    """Every decision equal and every probability within ``tolerance`` per signature
    (within :data:`TWIN_TOLERANCE` at least for a twin compared with another signature)."""
    return all(
        f["decisions_agree"] == f["images"]
        and f["max_abs_probability_difference"]
        <= (tolerance if name == f["compared_with"] else max(tolerance, TWIN_TOLERANCE))
        for name, f in figures.items()
    )


def metagraph_parity(
    saved, version_dir: Path, pixels: np.ndarray, signatures: Iterable[str] = EXPORTED_SIGNATURES
) -> dict[str, dict]:
    """The SavedModel loaded as TensorFlow Serving loads it, against ``tf.saved_model.load``:
    each signature on uint8 ``pixels`` (see :func:`parity`), the twins against
    ``predict_label``.

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
                signature,
                {INPUT_NAME: batch},
                list(SIGNATURE_ROWS[signature].outputs),
            ),
            saved,
            pixels,
            signatures,
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


def exported_labels(saved, images: np.ndarray) -> np.ndarray:
    """The labels the saved ``predict_label`` gives ``images``, in batches of 500."""
    return np.concatenate(
        [
            saved.signatures[PREDICT_LABEL](images=images[i : i + 500])[
                SIGNATURE_ROWS[PREDICT_LABEL].answer_output
            ].numpy()
            for i in range(0, len(images), 500)
        ]
    )


def exported_accuracy(saved, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the saved ``predict_label`` on ``images``, in batches of 500."""
    return float(np.mean(exported_labels(saved, images) == labels))


def exported_class_shares(saved, images: np.ndarray) -> list[float]:
    """The share of ``images`` the saved ``predict_label`` gives each class: what is
    known of the model on a target without labels."""
    counts = np.bincount(exported_labels(saved, images), minlength=NUM_CLASSES)
    return [round(float(count) / max(len(images), 1), 4) for count in counts]


def exported_probabilities(saved, pixels: np.ndarray, batch: int = 500) -> np.ndarray:
    """The saved ``predict_label``'s probabilities on uint8 ``pixels``, converted to the
    model's floats a batch at a time (10,000 test images never sit in memory as floats
    at once)."""
    return np.concatenate(
        [
            saved.signatures[PREDICT_LABEL](images=to_model_input(pixels[i : i + batch]))[
                PROBABILITIES_OUTPUT
            ].numpy()
            for i in range(0, len(pixels), batch)
        ]
    )

"""The ONNX twins: each signature ONNX can express as ``onnx/<signature>.onnx``, checked
against the SavedModel.

``dann-client --backend onnx`` runs them without a server; input and output names
are the signatures' own, so both backends read the same answers. ``predict_image``
has none: its graph decodes PNG, JPEG, GIF and BMP files with TensorFlow's decoders
and resizes with ``ScaleAndTranslate``, which have no ONNX operators (tf2onnx converts
neither); an ONNX user decodes the file and sends ``predict_label_uint8`` the pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dann_client.contract import (
    CLASSIFY_DOMAIN,
    INPUT_NAME,
    PREDICT_IMAGE,
    PREDICT_LABEL,
    PREDICT_LABEL_UINT8,
)
from dann_serve.export.checks import parity

ONNX_OPSET = 17
ONNX_SIGNATURES = (PREDICT_LABEL, CLASSIFY_DOMAIN, PREDICT_LABEL_UINT8)
# The exported signatures without an ONNX twin, and why (the export report lists them).
WITHOUT_ONNX = {
    PREDICT_IMAGE: (
        "decodes image files with TensorFlow's DecodePng/DecodeJpeg/DecodeImage and "
        "resizes with ScaleAndTranslate, which have no ONNX operators; decode the file "
        "yourself and use predict_label_uint8.onnx"
    )
}


def convert_to_onnx(function, path: Path) -> None:
    """One signature (a ``tf.function`` with its input signature) to ONNX with tf2onnx,
    input and output names kept."""
    import onnx
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=function.input_signature, opset=ONNX_OPSET
    )
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))


def onnx_parity(saved, onnx_dir: Path, pixels: np.ndarray) -> dict[str, dict]:
    """ONNX Runtime on ``onnx/<signature>.onnx`` against the SavedModel, on uint8
    ``pixels`` in each signature's form (see :func:`~dann_serve.export.checks.parity`)."""
    import onnxruntime

    sessions = {
        signature: onnxruntime.InferenceSession(
            str(onnx_dir / f"{signature}.onnx"), providers=["CPUExecutionProvider"]
        )
        for signature in ONNX_SIGNATURES
    }

    def answer(signature: str, inputs: np.ndarray) -> dict[str, np.ndarray]:
        session = sessions[signature]
        names = [output.name for output in session.get_outputs()]
        return dict(zip(names, session.run(None, {INPUT_NAME: inputs}), strict=True))

    return parity(answer, saved, pixels, ONNX_SIGNATURES)

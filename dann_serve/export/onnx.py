"""The ONNX twins: each signature ONNX can express as ``onnx/<signature>.onnx``, checked
against the SavedModel.

``dann-client --backend onnx`` runs them without a server; input and output names
are the signatures' own, so both backends read the same answers. Which signatures are
converted is the signature table's word: a row with a ``without_onnx`` reason has no
twin, and the export report lists the reason. ``predict_image`` is one: its graph
decodes PNG, JPEG, GIF and BMP files with TensorFlow's decoders and resizes with
``ScaleAndTranslate``, which have no ONNX operators (tf2onnx converts neither); an ONNX
user decodes the file and sends ``predict_label_uint8`` the pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dann_client.contract import INPUT_NAME, SIGNATURE_TABLE
from dann_serve.export.checks import parity

ONNX_OPSET = 17
# The signatures converted, and those without a twin with the reason (the report's).
ONNX_SIGNATURES = tuple(row.name for row in SIGNATURE_TABLE if row.without_onnx is None)
WITHOUT_ONNX = {row.name: row.without_onnx for row in SIGNATURE_TABLE if row.without_onnx}


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

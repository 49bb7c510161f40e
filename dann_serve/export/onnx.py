"""The ONNX twins: each signature as ``onnx/<signature>.onnx``, checked against the SavedModel.

``dann-client --backend onnx`` runs them without a server; input and output names
are the signatures' own, so both backends read the same answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dann_client.contract import INPUT_NAME, SIGNATURES
from dann_serve.export.checks import parity
from dann_serve.export.signatures import IMAGES_SPEC

ONNX_OPSET = 17


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

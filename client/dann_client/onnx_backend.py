"""Answer the same signatures locally with ONNX Runtime, from an exported .onnx file.

Useful without a server (offline, CI, a laptop) and as an independent check of
the served model: the export writes ``onnx/predict_label.onnx`` and
``onnx/classify_domain.onnx`` with the signatures' input and output names.
``onnxruntime`` is an optional extra and is imported only here.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from dann_client.contract import INPUT_NAME, ONNX_DIR
from dann_client.errors import ServerRejected, UsageError
from dann_client.preprocessing import to_model_input


class OnnxBackend:
    """Runs ``<signature>.onnx`` from ``path``.

    ``path`` is either one ``.onnx`` file, used for whatever signature is asked,
    or a directory: a version directory of the export (with ``onnx/`` inside) or
    that ``onnx/`` directory itself.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise UsageError(
                "the onnx backend needs onnxruntime: pip install 'dann-client[onnx]'"
            ) from None
        self._ort = onnxruntime
        self.path = Path(path)
        if not self.path.exists():
            raise UsageError(f"no such ONNX model: {self.path}")
        self._sessions: dict[str, object] = {}
        # predict_files runs batches from several threads: load each model once.
        self._lock = threading.Lock()

    def batch_limit(self, signature: str) -> None:
        """No message limit in-process."""
        return None

    def run(self, signature: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 pixels ``[N, 32, 32, 3]`` -> outputs by name (the model takes float32)."""
        session = self._session(signature)
        try:
            values = session.run(None, {INPUT_NAME: to_model_input(images)})
        except Exception as error:  # onnxruntime raises its own exception types
            message = " ".join(str(error).split())
            raise ServerRejected(
                f"ONNX model {self.path} rejected the input: {message}", "INVALID_ARGUMENT"
            ) from None
        names = [output.name for output in session.get_outputs()]
        return dict(zip(names, values, strict=True))

    def close(self) -> None:
        self._sessions.clear()

    def _session(self, signature: str) -> Any:
        with self._lock:
            return self._load_session(signature)

    def _load_session(self, signature: str) -> Any:
        if signature not in self._sessions:
            model_file = self._model_file(signature)
            options = self._ort.SessionOptions()
            options.log_severity_level = 3  # errors only: keep stderr for our own lines
            try:
                self._sessions[signature] = self._ort.InferenceSession(
                    str(model_file), options, providers=["CPUExecutionProvider"]
                )
            except Exception as error:
                message = " ".join(str(error).split())
                raise UsageError(f"cannot load ONNX model {model_file}: {message}") from None
        return self._sessions[signature]

    def _model_file(self, signature: str) -> Path:
        if self.path.is_file():
            return self.path
        filename = f"{signature}.onnx"
        for candidate in (self.path / filename, self.path / ONNX_DIR / filename):
            if candidate.is_file():
                return candidate
        raise UsageError(f"no {filename} in {self.path} or {self.path / ONNX_DIR}")

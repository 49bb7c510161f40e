"""How results look: one text line or one JSON object per result.

Text is for people at a terminal (a path with control characters in it is shown
escaped, so that a result is always one line); ``--json`` gives one
self-contained object per line, for scripts (``jq``, pandas
``read_json(lines=True)``). Probabilities are rounded to 6 decimals: float32
carries about 7 significant digits, the rest would be noise.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from dann_client.contract import CLASSIFY_DOMAIN

if TYPE_CHECKING:
    from dann_client.predict import Prediction
    from dann_client.service import ModelMetadata, TensorSpec, VersionStatus


def shown_path(path: str) -> str:
    """A path as text output shows it: as is, unless it holds characters that are
    not printable (a newline, a tab, bytes that are not UTF-8, ...); then as
    Python's ``repr``, quotes and backslash escapes included, so that one result
    stays one line and the name can still be told apart from its neighbours."""
    return path if path.isprintable() else repr(path)


def unreadable_text(path: str, reason: str) -> str:
    """``path: reason``, the stderr line of an input that gave no image."""
    return f"{shown_path(path)}: {reason}"


def prediction_text(prediction: Prediction, top_k: int | None = None) -> str:
    """``digit.png: 7 (0.981)  [0.001 ...]``, or with ``top_k`` the best classes only."""
    head = f"{shown_path(prediction.path)}: {prediction.answer} ({prediction.confidence:.3f})"
    if top_k:
        best = ", ".join(
            f"{prediction.class_name(index)} {p:.3f}" for index, p in prediction.top(top_k)
        )
        return f"{head}  top-{top_k}: {best}"
    return f"{head}  [{' '.join(f'{p:.3f}' for p in prediction.probabilities)}]"


def prediction_json(prediction: Prediction, top_k: int | None = None) -> str:
    """One JSON object: path, the answer, confidence, probabilities (and top_k)."""
    key = "domain" if prediction.signature == CLASSIFY_DOMAIN else "label"
    record: dict = {"path": prediction.path, key: prediction.index}
    if key == "domain":
        record["domain_name"] = prediction.answer
    record["confidence"] = round(prediction.confidence, 6)
    record["probabilities"] = [round(p, 6) for p in prediction.probabilities]
    if top_k:
        record["top_k"] = [[index, round(p, 6)] for index, p in prediction.top(top_k)]
    return json.dumps(record)


def status_text(status: VersionStatus) -> str:
    line = f"{status.model} version {status.version}: {status.state}"
    if status.error_code != "OK":
        line += f" ({status.error_code}: {status.error_message})"
    return line


def status_json(status: VersionStatus) -> str:
    return json.dumps(asdict(status))


def metadata_text(metadata: ModelMetadata) -> list[str]:
    """An indented listing of each signature's inputs and outputs."""
    version = "" if metadata.version is None else f" version {metadata.version}"
    lines = [f"{metadata.model}{version}"]
    for signature in metadata.signatures.values():
        lines.append(f"  {signature.name} ({signature.method})")
        for kind, tensors in (("input ", signature.inputs), ("output", signature.outputs)):
            lines.extend(f"    {kind} {name}: {_spec(t)}" for name, t in tensors.items())
    return lines


def metadata_json(metadata: ModelMetadata) -> list[str]:
    """One JSON object per signature."""
    return [
        json.dumps(
            {
                "model": metadata.model,
                "version": metadata.version,
                "signature": signature.name,
                "method": signature.method,
                "inputs": {k: _spec_dict(t) for k, t in signature.inputs.items()},
                "outputs": {k: _spec_dict(t) for k, t in signature.outputs.items()},
            }
        )
        for signature in metadata.signatures.values()
    ]


def _spec(tensor: TensorSpec) -> str:
    shape = "unknown rank" if tensor.shape is None else str(list(tensor.shape))
    return f"{tensor.dtype} {shape}"


def _spec_dict(tensor: TensorSpec) -> dict:
    return {"dtype": tensor.dtype, "shape": None if tensor.shape is None else list(tensor.shape)}

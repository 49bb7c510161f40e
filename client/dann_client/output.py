"""How results look: a text line, a JSON object or a CSV row per result.

Text is for people at a terminal (a path with control characters in it is shown
escaped, so that a result is always one line); ``--format json`` gives one
self-contained object per line, for scripts (``jq``, pandas
``read_json(lines=True)``); ``--format csv`` a header row and one row per image,
for spreadsheets and ``pandas.read_csv``, where an input that could not be read is
a row too, with its reason in the ``error`` column, so no image goes missing from
the table. Probabilities are rounded to 6 decimals: float32 carries about 7
significant digits, the rest would be noise.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TextIO

from dann_client.contract import CLASSIFY_DOMAIN, DOMAIN_NAMES, NUM_CLASSES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dann_client.api import ModelMetadata, TensorSpec, VersionStatus
    from dann_client.inputs import Unreadable
    from dann_client.predict import Prediction
    from dann_client.progress import Progress

FORMATS = ("text", "json", "csv")


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
    record: dict[str, Any] = {"path": prediction.path, key: prediction.index}
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
    return f"{tensor.dtype} {_shape(tensor)}"


def _shape(tensor: TensorSpec) -> str:
    return "unknown rank" if tensor.shape is None else str(list(tensor.shape))


def _spec_dict(tensor: TensorSpec) -> dict[str, Any]:
    return {"dtype": tensor.dtype, "shape": None if tensor.shape is None else list(tensor.shape)}


def status_lines(versions: list[VersionStatus], fmt: str) -> list[str]:
    """The versions in ``fmt``: a line or JSON object each, or a CSV table."""
    if fmt == "csv":
        fields = ["model", "version", "state", "error_code", "error_message"]
        return _csv_lines([fields, *([getattr(v, f) for f in fields] for v in versions)])
    show = status_json if fmt == "json" else status_text
    return [show(version) for version in versions]


def metadata_lines(metadata: ModelMetadata, fmt: str) -> list[str]:
    """The signatures in ``fmt``; in CSV one row per input or output tensor."""
    if fmt == "json":
        return metadata_json(metadata)
    if fmt == "text":
        return metadata_text(metadata)
    rows: list[list[Any]] = [
        ["model", "version", "signature", "method", "kind", "tensor", "dtype", "shape"]
    ]
    for signature in metadata.signatures.values():
        for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
            head = [metadata.model, metadata.version, signature.name, signature.method, kind]
            rows.extend(
                [*head, name, tensor.dtype, _shape(tensor)] for name, tensor in tensors.items()
            )
    return _csv_lines(rows)


class PredictionWriter:
    """Writes one format's results to ``stream``: the CSV header first, then a line
    or row per prediction; unreadable inputs become rows in CSV only (the other
    formats leave them to the ``path: reason`` line on stderr)."""

    def __init__(self, stream: TextIO, fmt: str, signature: str, top_k: int | None) -> None:
        self.stream = stream
        self.fmt = fmt
        self.top_k = top_k
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            self.columns = _csv_header(signature, top_k)
            self._csv.writerow(self.columns)

    def prediction(self, prediction: Prediction) -> None:
        if self._csv is not None:
            self._csv.writerow(_csv_row(prediction, self.top_k))
        else:
            show = prediction_json if self.fmt == "json" else prediction_text
            self.stream.write(show(prediction, self.top_k) + "\n")

    def unreadable(self, path: str, reason: str) -> None:
        if self._csv is not None:
            self._csv.writerow([path] + [""] * (len(self.columns) - 2) + [reason])


def _csv_header(signature: str, top_k: int | None) -> list[str]:
    if signature == CLASSIFY_DOMAIN:
        head = ["path", "domain", "domain_name", "confidence"]
        classes = [f"probability_{name}" for name in DOMAIN_NAMES]
    else:
        head = ["path", "label", "confidence"]
        classes = [f"probability_{index}" for index in range(NUM_CLASSES)]
    head += classes
    for rank in range(1, min(top_k or 0, len(classes)) + 1):  # no more ranks than classes
        head += [f"top{rank}", f"top{rank}_probability"]
    return [*head, "error"]


def _csv_row(prediction: Prediction, top_k: int | None) -> list[Any]:
    row: list[Any] = [prediction.path, prediction.index]
    if prediction.signature == CLASSIFY_DOMAIN:
        row.append(prediction.answer)
    row.append(_decimal(prediction.confidence))
    row += [_decimal(p) for p in prediction.probabilities]
    for index, probability in prediction.top(top_k) if top_k else ():
        row += [prediction.class_name(index), _decimal(probability)]
    return [*row, ""]


def _decimal(value: float) -> str:
    return f"{value:.6f}"


def _csv_lines(rows: list[list[Any]]) -> list[str]:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().removesuffix("\n").split("\n")  # a quoted field may hold "\r"


def write_results(
    results: Iterable[Prediction | Unreadable], writer: PredictionWriter, progress: Progress
) -> int:
    """Write each result as it comes, an unreadable input also as its ``path: reason``
    line on stderr (through ``progress``, which may be showing a bar there); return
    how many inputs were unreadable."""
    from dann_client.inputs import Unreadable

    unreadable = 0
    for result in results:
        progress.advance()
        if isinstance(result, Unreadable):
            unreadable += 1
            writer.unreadable(result.path, result.reason)
            writer.stream.flush()  # keep stdout and stderr in input order on one terminal
            progress.message(unreadable_text(result.path, result.reason))
        else:
            writer.prediction(result)
    return unreadable

"""Images in, predictions out: the client's core loop, free of CLI concerns.

``predict_files`` reads and preprocesses image files in batches, sends each
batch to a backend (a model server through ``remote.RemoteBackend``, over gRPC or
REST, or a local ONNX model through ``OnnxBackend``), and yields one
``Prediction`` or ``Unreadable`` per input, in input order. While earlier batches
are being answered the next one is read, so disk, CPU, network and the server
overlap. Batches stay uint8 pixels up to the backend, which sends them in the
cheapest form the model takes.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from dann_client.background import AUTO, Background
from dann_client.contract import (
    CLASSIFY_DOMAIN,
    DEFAULT_BATCH_SIZE,
    DEFAULT_IN_FLIGHT,
    DOMAIN_NAMES,
    PREDICT_LABEL,
    PROBABILITIES_OUTPUT,
    SIGNATURE_ROWS,
)
from dann_client.errors import ImageError, ServerRejected
from dann_client.inputs import Unreadable
from dann_client.preprocessing import load_image

# One batch in the pool: predict_arrays' answers and probabilities, once run.
_Batch = Future[tuple[np.ndarray, np.ndarray]]


class Backend(Protocol):
    """Anything that runs a signature on uint8 pixels ``[N, 32, 32, 3]``."""

    def batch_limit(self, signature: str) -> int | None:
        """The largest batch one call takes, None for no limit (may ask the server)."""
        ...

    def run(self, signature: str, images: np.ndarray) -> Mapping[str, np.ndarray]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image.

    ``index`` is the label (0-9) for ``predict_label`` and the domain column
    (0 source, 1 target) for ``classify_domain``.
    """

    path: str
    signature: str
    index: int
    probabilities: tuple[float, ...]

    @property
    def confidence(self) -> float:
        return self.probabilities[self.index]

    @property
    def answer(self) -> str:
        """What to print: the digit, or the domain's name."""
        return self.class_name(self.index)

    def class_name(self, index: int) -> str:
        """A class as people read it: ``"7"``, or ``"target"`` for domain column 1."""
        if self.signature == CLASSIFY_DOMAIN and index < len(DOMAIN_NAMES):
            return DOMAIN_NAMES[index]
        return str(index)

    def top(self, k: int) -> list[tuple[int, float]]:
        """The ``k`` most probable classes, best first."""
        order = sorted(range(len(self.probabilities)), key=lambda i: -self.probabilities[i])
        return [(i, self.probabilities[i]) for i in order[:k]]


def predict_arrays(
    backend: Backend, images: np.ndarray, signature: str = PREDICT_LABEL
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``signature`` on uint8 pixels ``[N, 32, 32, 3]``; return (answers int64 [N],
    probabilities float32 [N, C]).

    Checks the outputs against the signature contract, so that a model with other
    outputs is reported as such rather than as an index error later on.
    """
    outputs = backend.run(signature, images)
    row = SIGNATURE_ROWS.get(signature)
    answer_name = row.answer_output if row is not None else None
    probabilities = outputs.get(PROBABILITIES_OUTPUT)
    if probabilities is None:
        raise ServerRejected(f"the model's {signature} gave no '{PROBABILITIES_OUTPUT}' output")
    probabilities = np.asarray(probabilities, dtype=np.float32)
    answers = outputs.get(answer_name) if answer_name else None
    answers = probabilities.argmax(axis=-1) if answers is None else np.asarray(answers)
    count = len(images)
    if probabilities.ndim != 2 or len(probabilities) != count or answers.shape != (count,):
        raise ServerRejected(
            f"the model's {signature} answered {count} images with outputs of shape "
            f"{list(probabilities.shape)} and {list(answers.shape)}"
        )
    if count and not 0 <= answers.min() <= answers.max() < probabilities.shape[1]:
        raise ServerRejected(f"the model's {signature} answered classes outside its probabilities")
    return answers.astype(np.int64), probabilities


def predict_files(
    paths: Iterable[str | Path | Unreadable],
    backend: Backend,
    *,
    signature: str = PREDICT_LABEL,
    batch_size: int = DEFAULT_BATCH_SIZE,
    background: Background = AUTO,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> Iterator[Prediction | Unreadable]:
    """Predict every readable image; yield results and failures in input order.

    ``paths`` may already contain ``Unreadable`` items (from ``expand_inputs``);
    they pass through in place. Batches are capped by ``backend.batch_limit`` so
    that each request stays under the transport's message limit; it is asked with
    the first readable image, not before, so that a run with none needs no server.
    Up to ``in_flight`` batches are being answered while the next one is read: a
    server works on one request while the next arrives instead of idling for a
    round trip, and runs two at once when it has the cores. Server errors
    propagate as ``ServerUnavailable`` / ``ServerRejected``, after the unreadable
    inputs read so far.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if in_flight < 1:
        raise ValueError("in_flight must be at least 1")
    items = iter(paths)
    pending: deque[tuple[list[str | Unreadable], list[_Batch]]] = deque()
    limit: int | None = None
    asked = False
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="dann-predict")
    try:
        while chunk := list(itertools.islice(items, batch_size)):
            loaded, images = _load_chunk(chunk, background)
            if images is not None and not asked:
                try:
                    limit, asked = backend.batch_limit(signature), True
                except Exception:
                    for earlier in (*(done for done, _ in pending), loaded):
                        yield from _unreadable(earlier)
                    raise
                batch_size = min(batch_size, limit or batch_size)
            parts = () if images is None else _split(images, limit)
            futures = [pool.submit(predict_arrays, backend, part, signature) for part in parts]
            pending.append((loaded, futures))
            while len(pending) > in_flight:
                yield from _finish(*pending.popleft(), signature)
        while pending:
            yield from _finish(*pending.popleft(), signature)
    finally:
        # After an error (or a caller that stops early) the batches still queued
        # are dropped, not sent; the ones on the wire end within their deadline.
        pool.shutdown(wait=True, cancel_futures=True)


def _split(images: np.ndarray, limit: int | None) -> list[np.ndarray]:
    """The batch in requests of at most ``limit`` images (only the first batch, read
    before the limit was known, can be larger)."""
    step = limit or len(images)
    return [images[start : start + step] for start in range(0, len(images), step)]


def _unreadable(loaded: list[str | Unreadable]) -> Iterator[Unreadable]:
    return (item for item in loaded if isinstance(item, Unreadable))


def _load_chunk(
    chunk: list[str | Path | Unreadable], background: Background
) -> tuple[list[str | Unreadable], np.ndarray | None]:
    loaded: list[str | Unreadable] = []
    arrays = []
    for item in chunk:
        if isinstance(item, Unreadable):
            loaded.append(item)
            continue
        try:
            arrays.append(load_image(item, background=background))
            loaded.append(str(item))
        except ImageError as error:
            loaded.append(Unreadable(str(item), str(error)))
    return loaded, np.stack(arrays) if arrays else None


def _finish(
    loaded: list[str | Unreadable], futures: list[_Batch], signature: str
) -> Iterator[Prediction | Unreadable]:
    try:
        answered = [future.result() for future in futures]
    except Exception:
        # The batch failed as a whole (server down, request rejected): still
        # report its unreadable files before the error ends the run.
        yield from _unreadable(loaded)
        raise
    rows = (
        (int(answer), tuple(row))
        for answers, probabilities in answered
        for answer, row in zip(answers.tolist(), probabilities.tolist(), strict=True)
    )
    for item in loaded:
        if isinstance(item, Unreadable):
            yield item
        else:
            answer, row = next(rows)
            yield Prediction(item, signature, answer, row)

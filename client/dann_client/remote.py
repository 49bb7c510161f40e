"""A model server as a predict backend: which signature and encoding each batch takes.

Exports answer ``predict_label``'s question three ways: float32 pixels / 255
(``predict_label``, the only way older exports know), the uint8 pixels themselves
(``predict_label_uint8``, a quarter of the bytes, and no conversion on either side),
and encoded images (``predict_image``, one string per image, which is what makes REST
cheap: a JSON string per image instead of 3,072 numbers). Which signatures are twins
of which, and the input each takes, is read from the contract's signature table.
``RemoteBackend`` asks the server for the model's metadata once per run and sends
every batch the cheapest way both the model and the protocol carry; the answers
are the same whichever way is taken, because each way carries the same pixels:
the client's own preprocessing (``dann_client.preprocessing``) always runs first.

Over REST that means ``predict_image`` receives the client's 32x32 RGB result as a
lossless PNG, not the user's original file: a 32x32 RGB image passes the graph's
decoder unchanged, so REST, gRPC and ``--backend onnx`` agree bit for bit, whatever
the file's format (TIFF, WebP, 16-bit, EXIF-rotated) or ``--background``; an
unreadable file is found and reported by the client without failing its batch;
and a large photo travels as ~2 KB instead of megabytes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

import numpy as np

from dann_client.api import ModelRef
from dann_client.contract import (
    FLOAT_PIXELS,
    INPUT_NAME,
    PNG_FILES,
    SIGNATURE_TABLE,
    UINT8_PIXELS,
    ServingSignature,
)
from dann_client.errors import ServerRejected
from dann_client.preprocessing import encode_png, layout_batch, to_model_input

if TYPE_CHECKING:
    from dann_client.api import ModelMetadata, VersionStatus


class Wire(Enum):
    """How a batch of images travels."""

    FLOAT32 = FLOAT_PIXELS  # pixels / 255, float32 [N, 32, 32, 3]: every export takes it
    UINT8 = UINT8_PIXELS  # the pixels, uint8 [N, 32, 32, 3], to predict_label_uint8
    PNG = PNG_FILES  # one lossless 32x32 RGB PNG per image, string [N], to predict_image


Payload = np.ndarray | list[bytes]

# Metadata answers after which float32 is still right: a server without the
# metadata call, or one whose metadata the client cannot read.
_NO_METADATA = frozenset({"UNIMPLEMENTED", "DATA_LOSS"})


@dataclass(frozen=True)
class Route:
    """The signature a batch is sent to and the encoding it travels in."""

    signature: str
    wire: Wire


def twins(signature: str, wires: tuple[Wire, ...]) -> list[tuple[Wire, ServingSignature]]:
    """The signatures giving ``signature``'s answers from another input that one of
    ``wires`` carries, in the order of ``wires`` (the protocol's cheapest first)."""
    found = {
        Wire(row.example): row
        for row in SIGNATURE_TABLE
        if row.answers_as == signature and row.name != signature
    }
    return [(wire, found[wire]) for wire in wires if wire in found]


def choose_route(signature: str, metadata: ModelMetadata | None, wires: tuple[Wire, ...]) -> Route:
    """The cheapest of ``wires`` the model takes for ``signature``; float32 to the
    signature itself when the model lists no twin (an older export) or none fits."""
    for wire, twin in twins(signature, wires):
        found = metadata.signatures.get(twin.name) if metadata is not None else None
        image_input = found.inputs.get(INPUT_NAME) if found is not None else None
        if image_input is not None and image_input.dtype == twin.data_type:
            return Route(twin.name, wire)
    return Route(signature, Wire.FLOAT32)


def encode(wire: Wire, images: np.ndarray) -> Payload:
    """uint8 pixels ``[N, 32, 32, 3]`` in the form ``wire`` carries."""
    if wire is Wire.FLOAT32:
        return to_model_input(images)
    if wire is Wire.UINT8:
        return images
    return [encode_png(image) for image in images]


class ModelServer(Protocol):
    """TensorFlow Serving's API over one protocol (``service.GrpcServer``,
    ``rest_service.RestServer``): the three calls, the payloads it can carry, its
    request-size cap, and the address its errors name."""

    address: str
    wires: tuple[Wire, ...]  # the encodings this protocol can carry, cheapest first

    def max_images(self, wire: Wire) -> int: ...

    def model_status(self, model: ModelRef) -> list[VersionStatus]: ...

    def model_metadata(self, model: ModelRef) -> ModelMetadata: ...

    def predict(
        self, model: ModelRef, signature: str, payload: Payload
    ) -> Mapping[str, np.ndarray]: ...

    def close(self) -> None: ...


class RemoteBackend:
    """Runs a signature on a model server, on uint8 pixels ``[N, 32, 32, 3]``.

    ``wires`` narrows the encodings tried (``(Wire.FLOAT32,)`` sends what clients sent
    before the twins existed, for comparisons); by default all the protocol carries. The one
    metadata call is made on first use, only when the signature has a twin, and is
    shared by every thread of the run.
    """

    def __init__(
        self,
        server: ModelServer,
        model: ModelRef | None = None,
        *,
        wires: tuple[Wire, ...] | None = None,
    ) -> None:
        self.server = server
        self.model = model or ModelRef()
        self.wires = tuple(w for w in server.wires if wires is None or w in wires)
        self._routes: dict[str, Route] = {}
        self._metadata: tuple[ModelMetadata | None] | None = None
        self._lock = threading.Lock()

    def route(self, signature: str) -> Route:
        """Where and how ``signature``'s batches go (asks the server once per run)."""
        with self._lock:
            if signature not in self._routes:
                needs_metadata = bool(twins(signature, self.wires))
                metadata = self._read_metadata() if needs_metadata else None
                self._routes[signature] = choose_route(signature, metadata, self.wires)
            return self._routes[signature]

    def batch_limit(self, signature: str) -> int:
        """The most images one request may hold under the protocol's size cap."""
        return self.server.max_images(self.route(signature).wire)

    def run(self, signature: str, images: np.ndarray) -> Mapping[str, np.ndarray]:
        """uint8 pixels ``[N, 32, 32, 3]`` -> ``signature``'s outputs by name."""
        route = self.route(signature)
        payload = encode(route.wire, layout_batch(images))
        return self.server.predict(self.model, route.signature, payload)

    def close(self) -> None:
        self.server.close()

    def _read_metadata(self) -> ModelMetadata | None:
        if self._metadata is None:
            try:
                self._metadata = (self.server.model_metadata(self.model),)
            except ServerRejected as error:
                if error.code not in _NO_METADATA:
                    raise
                self._metadata = (None,)
        return self._metadata[0]

"""TensorFlow Serving's three RPCs over gRPC, in plain Python terms.

``model_status`` and ``model_metadata`` wrap ``GetModelStatus`` and
``GetModelMetadata``; ``GrpcServer`` bundles them with ``Predict`` as a
``remote.ModelServer``, and ``GrpcBackend`` is the predict backend on top (uint8
pixels to ``predict_label_uint8`` when the model has it, float32 otherwise). All
take a ``Transport`` (address, TLS, deadlines, retries) and a ``ModelRef`` (name,
version or label). The REST twins live in ``rest_service``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import numpy as np

from dann_client import messages
from dann_client.api import (
    ModelMetadata,
    ModelRef,
    Signature,
    TensorSpec,
    VersionStatus,
    parse_model_metadata,
    parse_model_status,
)
from dann_client.contract import INPUT_NAME, INPUT_SHAPE
from dann_client.errors import ServerRejected
from dann_client.remote import Payload, RemoteBackend, Wire
from dann_client.tensors import from_tensor_proto, to_tensor_proto

if TYPE_CHECKING:
    from dann_client.transport import Transport

__all__ = [
    "GrpcBackend",
    "GrpcServer",
    "ModelMetadata",
    "ModelRef",
    "Signature",
    "TensorSpec",
    "VersionStatus",
    "max_images_per_request",
    "model_metadata",
    "model_status",
    "parse_model_metadata",
    "parse_model_status",
]

_PIXELS = math.prod(INPUT_SHAPE)
_IMAGE_BYTES = {Wire.FLOAT32: _PIXELS * 4, Wire.UINT8: _PIXELS}  # in tensor_content
_REQUEST_OVERHEAD = 16 * 1024  # model spec, map keys, shape: generously


def max_images_per_request(max_message_bytes: int, wire: Wire = Wire.FLOAT32) -> int:
    """How many 32x32x3 images of ``wire``'s dtype fit in one request under the limit."""
    return max(1, (max_message_bytes - _REQUEST_OVERHEAD) // _IMAGE_BYTES[wire])


def model_status(transport: Transport, model: ModelRef) -> list[VersionStatus]:
    """Every version the server knows of ``model`` (or just the one asked for)."""
    request = messages.GetModelStatusRequest(model_spec=model.spec())
    response = transport.call(messages.GET_MODEL_STATUS, request, messages.GetModelStatusResponse)
    return parse_model_status(response, model.name)


def model_metadata(transport: Transport, model: ModelRef) -> ModelMetadata:
    """The served version's signatures with their inputs' and outputs' dtypes and shapes."""
    request = messages.GetModelMetadataRequest(model_spec=model.spec())
    request.metadata_field.append("signature_def")
    response = transport.call(
        messages.GET_MODEL_METADATA, request, messages.GetModelMetadataResponse
    )
    return parse_model_metadata(response, model.name)


class GrpcServer:
    """TensorFlow Serving's gRPC API as a ``remote.ModelServer``: arrays travel as raw
    bytes in ``tensor_content``, so uint8 is the cheapest encoding it carries."""

    wires: tuple[Wire, ...] = (Wire.UINT8, Wire.FLOAT32)

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.address = transport.address

    def max_images(self, wire: Wire) -> int:
        return max_images_per_request(self.transport.max_message_bytes, wire)

    def model_status(self, model: ModelRef) -> list[VersionStatus]:
        return model_status(self.transport, model)

    def model_metadata(self, model: ModelRef) -> ModelMetadata:
        return model_metadata(self.transport, model)

    def predict(self, model: ModelRef, signature: str, payload: Payload) -> dict[str, np.ndarray]:
        """A uint8 or float32 batch -> the signature's outputs by name."""
        if not isinstance(payload, np.ndarray):
            raise ValueError("the gRPC client sends arrays, not encoded images")
        request = messages.PredictRequest(model_spec=model.spec(signature))
        request.inputs[INPUT_NAME].CopyFrom(to_tensor_proto(payload))
        response = self.transport.call(messages.PREDICT, request, messages.PredictResponse)
        try:
            return {name: from_tensor_proto(t) for name, t in response.outputs.items()}
        except ValueError as error:
            message = f"server sent an unreadable tensor: {error}"
            raise ServerRejected(message, "DATA_LOSS") from None

    def close(self) -> None:
        self.transport.close()


class GrpcBackend(RemoteBackend):
    """Runs a signature on a model server through gRPC ``Predict`` (see ``RemoteBackend``)."""

    def __init__(
        self,
        transport: Transport,
        model: ModelRef | None = None,
        *,
        wires: tuple[Wire, ...] | None = None,
    ) -> None:
        super().__init__(GrpcServer(transport), model, wires=wires)

    @property
    def transport(self) -> Transport:
        return cast(GrpcServer, self.server).transport

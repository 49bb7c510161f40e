"""TensorFlow Serving's three RPCs, in plain Python terms.

``GrpcBackend`` answers a signature on a batch of images with ``Predict``;
``model_status`` and ``model_metadata`` wrap ``GetModelStatus`` and
``GetModelMetadata`` and return small dataclasses that print and serialise
easily. All of them take a ``Transport`` (address, TLS, deadlines, retries) and
a ``ModelRef`` (name, version or label).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dann_client import messages
from dann_client.contract import DEFAULT_MODEL, INPUT_NAME, INPUT_SHAPE
from dann_client.errors import ServerRejected
from dann_client.tensors import dtype_name, from_tensor_proto, to_tensor_proto
from dann_client.transport import Transport

_IMAGE_BYTES = math.prod(INPUT_SHAPE) * 4  # one float32 image
_REQUEST_OVERHEAD = 16 * 1024  # model spec, map keys, shape: generously


@dataclass(frozen=True)
class ModelRef:
    """Which model a request names; ``version`` and ``label`` exclude each other."""

    name: str = DEFAULT_MODEL
    version: int | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.version is not None and self.label is not None:
            raise ValueError("give a version or a label, not both")

    def spec(self, signature: str = "") -> messages.ModelSpec:
        spec = messages.ModelSpec(name=self.name, signature_name=signature)
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        return spec


def max_images_per_request(max_message_bytes: int) -> int:
    """How many 32x32x3 float32 images fit in one request under the size limit."""
    return max(1, (max_message_bytes - _REQUEST_OVERHEAD) // _IMAGE_BYTES)


class GrpcBackend:
    """Runs a signature on a model server through ``Predict``."""

    def __init__(self, transport: Transport, model: ModelRef | None = None) -> None:
        self.transport = transport
        self.model = model or ModelRef()
        self.max_batch = max_images_per_request(transport.max_message_bytes)

    def run(self, signature: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """float32 ``[N, 32, 32, 3]`` -> the signature's outputs by name."""
        request = messages.PredictRequest(model_spec=self.model.spec(signature))
        request.inputs[INPUT_NAME].CopyFrom(to_tensor_proto(images.astype(np.float32, copy=False)))
        response = self.transport.call(messages.PREDICT, request, messages.PredictResponse)
        try:
            return {name: from_tensor_proto(t) for name, t in response.outputs.items()}
        except ValueError as error:
            message = f"server sent an unreadable tensor: {error}"
            raise ServerRejected(message, "DATA_LOSS") from None

    def close(self) -> None:
        self.transport.close()


@dataclass(frozen=True)
class VersionStatus:
    """One model version as the server sees it."""

    model: str
    version: int
    state: str  # UNKNOWN, START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str = "OK"
    error_message: str = ""


def model_status(transport: Transport, model: ModelRef) -> list[VersionStatus]:
    """Every version the server knows of ``model`` (or just the one asked for)."""
    request = messages.GetModelStatusRequest(model_spec=model.spec())
    response = transport.call(messages.GET_MODEL_STATUS, request, messages.GetModelStatusResponse)
    return parse_model_status(response, model.name)


def parse_model_status(
    response: messages.GetModelStatusResponse, model: str
) -> list[VersionStatus]:
    """A ``GetModelStatusResponse`` (from any server) as plain dataclasses."""
    return [
        VersionStatus(
            model=model,
            version=status.version,
            state=_enum_name(messages.VERSION_STATE, status.state),
            error_code=_enum_name(messages.ERROR_CODE, status.status.error_code),
            error_message=status.status.error_message,
        )
        for status in response.model_version_status
    ]


@dataclass(frozen=True)
class TensorSpec:
    dtype: str  # DT_FLOAT, DT_INT64, ...
    shape: tuple[int, ...] | None  # -1 for a free dimension; None for unknown rank


@dataclass(frozen=True)
class Signature:
    name: str
    method: str
    inputs: Mapping[str, TensorSpec] = field(default_factory=dict)
    outputs: Mapping[str, TensorSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelMetadata:
    model: str
    version: int | None
    signatures: Mapping[str, Signature]


def model_metadata(transport: Transport, model: ModelRef) -> ModelMetadata:
    """The served version's signatures with their inputs' and outputs' dtypes and shapes."""
    request = messages.GetModelMetadataRequest(model_spec=model.spec())
    request.metadata_field.append("signature_def")
    response = transport.call(
        messages.GET_MODEL_METADATA, request, messages.GetModelMetadataResponse
    )
    return parse_model_metadata(response, model.name)


def parse_model_metadata(
    response: messages.GetModelMetadataResponse, model: str = DEFAULT_MODEL
) -> ModelMetadata:
    """A ``GetModelMetadataResponse`` (from any server) as plain dataclasses.

    The signatures travel as a ``SignatureDefMap`` packed into a
    ``google.protobuf.Any`` under the key ``signature_def``.
    """
    packed = response.metadata.get("signature_def")
    if packed is None or packed.type_url != messages.SIGNATURE_DEF_MAP_URL:
        raise ServerRejected("server sent no signature_def metadata", "DATA_LOSS")
    signature_map = messages.SignatureDefMap.FromString(packed.value)
    signatures = {
        name: Signature(
            name=name,
            method=definition.method_name,
            inputs={k: _tensor_spec(v) for k, v in sorted(definition.inputs.items())},
            outputs={k: _tensor_spec(v) for k, v in sorted(definition.outputs.items())},
        )
        for name, definition in sorted(signature_map.signature_def.items())
    }
    spec = response.model_spec
    version = spec.version.value if spec.HasField("version") else None
    return ModelMetadata(model=spec.name or model, version=version, signatures=signatures)


def _tensor_spec(info: messages.TensorInfo) -> TensorSpec:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(dim.size for dim in shape.dim)
    return TensorSpec(dtype=dtype_name(info.dtype), shape=dims)


def _enum_name(enum, number: int) -> str:
    value = enum.values_by_number.get(number)
    return value.name if value is not None else str(number)

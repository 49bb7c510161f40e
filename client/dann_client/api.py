"""TensorFlow Serving's API in plain Python terms, whatever the protocol.

Which model a request names (``ModelRef``), and what GetModelStatus and
GetModelMetadata answer, as small dataclasses that print and serialise easily.
The gRPC answers arrive as messages; the REST ones as the same messages in JSON,
which ``rest_service`` parses into these message classes first, so that one parser
(``parse_model_status``, ``parse_model_metadata``) reads both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dann_client import messages
from dann_client.contract import DEFAULT_MODEL
from dann_client.errors import ServerRejected
from dann_client.tensors import dtype_name


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


@dataclass(frozen=True)
class VersionStatus:
    """One model version as the server sees it."""

    model: str
    version: int
    state: str  # UNKNOWN, START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str = "OK"
    error_message: str = ""


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


def _enum_name(enum: Any, number: int) -> str:
    value = enum.values_by_number.get(number)
    return value.name if value is not None else str(number)

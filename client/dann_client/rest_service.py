"""TensorFlow Serving's REST API as a ``remote.ModelServer``: the JSON of its routes.

``GET /v1/models/<m>[/versions/<v>|/labels/<l>]`` (status), ``.../metadata``, and
``POST ...:predict`` with ``signature_name`` and the columnar ``inputs``, which
TensorFlow Serving answers with ``outputs`` as one array per output name. Status
and metadata come back as the gRPC messages in JSON; they are parsed into the
client's message classes and read by the same parsers as gRPC's answers
(``api.parse_model_status``, ``api.parse_model_metadata``).

Images travel as ``{"b64": ...}`` strings to ``predict_image`` when the model has
it (``remote`` says which PNG and why), else as JSON numbers: uint8 to
``predict_label_uint8``, or float32 to ``predict_label`` for older exports.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any
from urllib.parse import quote

import numpy as np
from google.protobuf import json_format

from dann_client import messages
from dann_client.api import (
    ModelMetadata,
    ModelRef,
    VersionStatus,
    parse_model_metadata,
    parse_model_status,
)
from dann_client.contract import INPUT_SHAPE
from dann_client.errors import ServerRejected
from dann_client.remote import Payload, RemoteBackend, Wire
from dann_client.rest import RestTransport

_PIXELS = math.prod(INPUT_SHAPE)
# Bytes of JSON per image at most, to keep a request under the size cap: a float32
# pixel / 255 prints as the float64 it widens to, in up to 20 characters plus a comma;
# a uint8 in up to three plus a comma; the brackets of 32 rows of 32 pixels add 2,148;
# an incompressible 32x32 RGB PNG is about 3.2 KB, 4.3 KB as base64.
_JSON_IMAGE_BYTES = {
    Wire.FLOAT32: _PIXELS * 21 + 2200,
    Wire.UINT8: _PIXELS * 4 + 2200,
    Wire.PNG: 6 * 1024,
}
_REQUEST_OVERHEAD = 1024


def model_path(model: ModelRef) -> str:
    """``/v1/models/<name>`` with ``/versions/<v>`` or ``/labels/<l>`` as the ref says;
    names are quoted, so no name can reach another route."""
    path = f"/v1/models/{quote(model.name, safe='')}"
    if model.version is not None:
        return f"{path}/versions/{model.version}"
    if model.label is not None:
        return f"{path}/labels/{quote(model.label, safe='')}"
    return path


class RestServer:
    """The REST API over a ``RestTransport``."""

    wires: tuple[Wire, ...] = (Wire.PNG, Wire.UINT8, Wire.FLOAT32)

    def __init__(self, transport: RestTransport) -> None:
        self.transport = transport
        self.address = transport.address

    def max_images(self, wire: Wire) -> int:
        budget = self.transport.max_message_bytes - _REQUEST_OVERHEAD
        return max(1, budget // _JSON_IMAGE_BYTES[wire])

    def model_status(self, model: ModelRef) -> list[VersionStatus]:
        payload = self.transport.request("GET", model_path(model))
        response = self._parse(payload, messages.GetModelStatusResponse(), "status")
        return parse_model_status(response, model.name)

    def model_metadata(self, model: ModelRef) -> ModelMetadata:
        payload = self.transport.request("GET", model_path(model) + "/metadata")
        spec = {"model_spec": payload.get("model_spec", {})}
        response = self._parse(spec, messages.GetModelMetadataResponse(), "metadata")
        found = payload.get("metadata", {})
        signatures = found.get("signature_def") if isinstance(found, dict) else None
        if isinstance(signatures, dict):
            packed = response.metadata["signature_def"]
            packed.type_url = messages.SIGNATURE_DEF_MAP_URL
            signature_map = self._parse(signatures, messages.SignatureDefMap(), "metadata")
            packed.value = signature_map.SerializeToString()
        return parse_model_metadata(response, model.name)

    def predict(self, model: ModelRef, signature: str, payload: Payload) -> dict[str, np.ndarray]:
        """A batch (uint8 or float32 array, or encoded images) -> outputs by name."""
        if isinstance(payload, np.ndarray):
            inputs: list[Any] = payload.tolist()
        else:
            inputs = [{"b64": base64.b64encode(image).decode("ascii")} for image in payload]
        body = json.dumps({"signature_name": signature, "inputs": inputs}, separators=(",", ":"))
        del inputs
        answer = self.transport.request("POST", model_path(model) + ":predict", body.encode())
        outputs = answer.get("outputs")
        if not isinstance(outputs, dict):
            raise ServerRejected(
                f"server {self.address} answered :predict without named 'outputs'", "DATA_LOSS"
            )
        try:
            return {name: np.asarray(value) for name, value in outputs.items()}
        except ValueError as error:
            raise ServerRejected(
                f"server {self.address} sent an unreadable output: {error}", "DATA_LOSS"
            ) from None

    def close(self) -> None:
        self.transport.close()

    def _parse(self, payload: dict[str, Any], message: Any, what: str) -> Any:
        try:
            return json_format.ParseDict(payload, message, ignore_unknown_fields=True)
        except json_format.ParseError as error:
            raise ServerRejected(
                f"server {self.address} sent unreadable {what}: {error}", "DATA_LOSS"
            ) from None


class RestBackend(RemoteBackend):
    """Runs a signature on a model server through REST ``:predict`` (see
    ``RemoteBackend``): b64 PNGs to ``predict_image`` when the model has it."""

    def __init__(
        self,
        transport: RestTransport,
        model: ModelRef | None = None,
        *,
        wires: tuple[Wire, ...] | None = None,
    ) -> None:
        super().__init__(RestServer(transport), model, wires=wires)

"""REST front end with TensorFlow Serving's URLs and JSON shapes.

``GET /v1/models/<m>[/versions/<v>|/labels/<l>]`` (status), ``.../metadata``, the
live monitor's ``.../monitor`` (all served versions without a version or label), and
``GET /v1/models`` (every model the server was asked to serve, with its versions' states
and its labels: what a page or a program lists; not TF Serving's), and
``POST ...:predict`` with the row format (``instances`` -> ``predictions``) or the
columnar one (``inputs`` -> ``outputs``); bytes (``predict_image``'s encoded images)
as ``{"b64": "..."}``, an instance of its own or an input's value, as TF Serving reads
them. Errors are ``{"error": "..."}`` with TF Serving's HTTP code for the status. The
model name in a URL is only ever a key into the registry, never a path, so no URL can
reach a file outside the model directory. ``GET /v1/openapi.json`` describes them all
(:mod:`~dann_serve.serving.openapi`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from dann_serve.serving import live_monitor, openapi, service
from dann_serve.serving.http_server import HttpServer
from dann_serve.serving.limits import Limits
from dann_serve.serving.model_config import MAX_VERSION
from dann_serve.serving.page import Page
from dann_serve.serving.registry import ModelRegistry
from dann_serve.serving.signature import ServedSignature
from dann_serve.serving.status import ServingError, invalid, not_found
from dann_serve.serving.tensors import STRING, from_json, is_binary, strings_from_json, to_json

log = logging.getLogger("dann_serve.serving")

_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>/metadata|:predict|:classify|:regress)?$"
)

_STATE_NAME = get_model_status_pb2.ModelVersionStatus.State.Name

_MONITOR_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?/monitor$"
)


def _spec(match: re.Match) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=match["name"])
    if match["version"] is not None:
        text = match["version"]
        if len(text) > 19 or int(text) > MAX_VERSION:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise invalid(f"Failed to convert version: {shown} to numeric.")  # TF Serving's
        spec.version.value = int(text)
    elif match["label"] is not None:
        spec.version_label = match["label"]
    return spec


def _message_json(message) -> dict:
    """A response message as TF Serving's REST API prints it: proto field names, defaults
    included, and the signature map without the ``@type`` of its ``Any``."""
    payload = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for value in payload.get("metadata", {}).values():
        value.pop("@type", None)
    return payload


def _decoder(signature: ServedSignature, limits: Limits):
    """``decode(name, value)``: one input's JSON value as an array, its shape checked
    against the bounds and the signature before its values are converted, and its
    values (an encoded image's declared size) after. A string input takes JSON strings
    and TensorFlow Serving's ``{"b64": "..."}`` objects."""

    def decode(name: str, value: Any) -> np.ndarray:
        dtype = signature.input_dtype(name)

        def check(shape: tuple[int, ...]) -> None:
            limits.check_shape(name, shape, dtype.itemsize)
            signature.check_input_shape(name, shape)

        if dtype == STRING:
            array = strings_from_json(value, name, check, limits.max_tensor_bytes)
        else:
            array = from_json(value, dtype, name, check)
        signature.check_input_values(name, array, limits)
        return array

    return decode


def _inputs(
    signature: ServedSignature, value: Any, row_format: bool, limits: Limits
) -> dict[str, np.ndarray]:
    """The named input arrays of a row (``instances``) or columnar (``inputs``) request."""
    names = signature.input_names
    decode = _decoder(signature, limits)
    if row_format:
        if not isinstance(value, list):
            raise invalid("'instances' must be a list")
        if not value:
            raise invalid("No values in 'instances' array")  # TF Serving's words
        if all(isinstance(row, dict) and not is_binary(row) for row in value):
            keys = set(value[0])
            if any(set(row) != keys for row in value):
                raise invalid("every object in 'instances' must have the same keys")
            signature.check_input_names(keys)
            return {k: decode(k, [row[k] for row in value]) for k in keys}
        if len(names) != 1:
            raise invalid(f"the signature has inputs {names}: give each instance as an object")
        return {names[0]: decode(names[0], value)}
    if isinstance(value, dict):
        signature.check_input_names(value)
        return {k: decode(k, v) for k, v in value.items()}
    if len(names) != 1:
        raise invalid(f"the signature has inputs {names}: give 'inputs' as an object")
    return {names[0]: decode(names[0], value)}


# Parsing JSON holds the GIL: requests parsed one at a time are no slower on the whole,
# and at most one request's worth of Python objects (many times its body) exists at once,
# instead of several interleaved in the heap, where what one leaves pins another's pages.
_PARSING = threading.Lock()


def _parse(raw: bytes | bytearray, limits: Limits) -> dict:
    limits.check_json_size(raw)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        # RecursionError: arrays nested deeper than the parser's stack allows;
        # ValueError also covers integers of more than 4,300 digits.
        raise invalid(f"JSON Parse error: {error}") from None
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    if ("instances" in body) == ("inputs" in body):
        raise invalid("the request must have exactly one of 'instances' or 'inputs'")
    if not isinstance(body.get("signature_name", ""), str):
        raise invalid("'signature_name' must be a string")
    return body


def predict_json(
    registry: ModelRegistry, spec: model_pb2.ModelSpec, raw: bytes | bytearray, limits: Limits
) -> dict:
    """The JSON answer to a ``:predict`` body, in the format the body used."""
    with contextlib.ExitStack() as stack:
        with _PARSING:
            body = _parse(raw, limits)
            row_format = "instances" in body
            loaded = stack.enter_context(service.serving(registry, spec))
            signature = loaded.signature(body.get("signature_name", ""))
            value = body.pop("instances" if row_format else "inputs")
            inputs = _inputs(signature, value, row_format, limits)
            del value, body  # the parsed JSON, many times the tensor: let it go now
        outputs = service.run_signature(loaded, signature, inputs)
    return _answer(outputs, row_format)


def _answer(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    if not row_format:
        if len(outputs) == 1:
            return {"outputs": to_json(next(iter(outputs.values())))}
        return {"outputs": {name: to_json(array) for name, array in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": to_json(next(iter(outputs.values())))}
    columns = {name: to_json(array) for name, array in outputs.items()}
    rows = len(next(iter(columns.values())))
    return {
        "predictions": [{name: column[i] for name, column in columns.items()} for i in range(rows)]
    }


class RestApi:
    """The REST routes over one registry: ``(method, target, body) -> (status, JSON)``.

    Called by :class:`~dann_serve.serving.http_server.HttpServer` in a worker thread
    with the whole body already read; never raises.
    """

    def __init__(self, registry: ModelRegistry, limits: Limits) -> None:
        self.registry = registry
        self.limits = limits

    def __call__(self, method: str, target: str, body: bytes | bytearray) -> tuple[int, bytes]:
        try:
            status, payload = 200, self._route(method, target, body)
        except ServingError as error:
            status, payload = error.http_status, {"error": error.message}
        except Exception as error:
            log.exception("internal error on %s %s", method, target[:200])
            status, payload = 500, {"error": f"{type(error).__name__}: {error}"}
        return status, json.dumps(payload, separators=(",", ":")).encode()

    def _route(self, method: str, target: str, body: bytes | bytearray) -> dict:
        path = target.split("?", 1)[0]
        if method == "GET" and path == openapi.OPENAPI_PATH:
            return openapi.description()
        match = _URL.match(path)
        verb = match["verb"] if match else None
        if match and method == "GET" and verb is None:
            request = get_model_status_pb2.GetModelStatusRequest(model_spec=_spec(match))
            return _message_json(service.model_status(self.registry, request))
        if match and method == "GET" and verb == "/metadata":
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=_spec(match), metadata_field=[service.SIGNATURE_DEF_FIELD]
            )
            return _message_json(service.model_metadata(self.registry, request))
        if match and method == "POST" and verb == ":predict":
            return predict_json(self.registry, _spec(match), body, self.limits)
        if match and method == "POST" and verb in (":classify", ":regress"):
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED, f"{verb[1:]} is not implemented by dann-serve"
            )
        monitor = _MONITOR_URL.match(path)
        if monitor and method == "GET":
            return self._monitor(_spec(monitor))
        if path == openapi.MODELS_PATH and method == "GET":
            return self._models()
        raise not_found(f"Malformed request: {method} {path[:200]}")

    def _models(self) -> dict:
        """Each model to serve, with its versions (newest first) and version labels."""
        models = []
        for name, labels in self.registry.labels().items():
            try:
                states = self.registry.status(name)
            except ServingError:
                states = []  # configured, no version seen yet
            versions = [
                {"version": version, "state": _STATE_NAME(state), "error": error}
                for version, state, error in states
            ]
            models.append({"name": name, "versions": versions, "labels": labels})
        return {"models": models}

    def _monitor(self, spec: model_pb2.ModelSpec) -> dict:
        """The live monitor's figures of the version ``spec`` names, or of every served
        version of its model when it names none."""
        monitor = live_monitor.current()
        which = spec.WhichOneof("version_choice")
        if which is None:
            return monitor.model_json(spec.name)
        return monitor.version_json(spec.name, service.resolve(self.registry, spec).version)


def rest_server(
    host: str, port: int, registry: ModelRegistry, limits: Limits, workers: int, ui: bool = True
) -> HttpServer:
    """The REST front end bound to ``host:port`` (0: any free port), not started yet;
    with the web page at ``/`` unless ``ui`` is False."""
    page = Page(limits) if ui else None
    return HttpServer(host, port, RestApi(registry, limits), limits, workers, page)

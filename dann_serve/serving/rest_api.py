"""REST front end with TensorFlow Serving's URLs and JSON shapes.

``GET /v1/models/<m>[/versions/<v>|/labels/<l>]`` (status), ``.../metadata``, and
``POST ...:predict`` with the row format (``instances`` -> ``predictions``) or the
columnar one (``inputs`` -> ``outputs``). Errors are ``{"error": "..."}`` with TF
Serving's HTTP code for the status. The model name in a URL is only ever a key into
the registry, never a path, so no URL can reach a file outside the model directory.
"""

from __future__ import annotations

import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from dann_serve.serving import service
from dann_serve.serving.registry import ModelRegistry
from dann_serve.serving.signature import ServedSignature
from dann_serve.serving.status import ServingError, invalid, not_found
from dann_serve.serving.tensors import from_json, to_json

log = logging.getLogger("dann_serve.serving")

_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>/metadata|:predict|:classify|:regress)?$"
)


def _spec(match: re.Match) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=match["name"])
    if match["version"] is not None:
        spec.version.value = int(match["version"])
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


def _inputs(signature: ServedSignature, value: Any, row_format: bool) -> dict[str, np.ndarray]:
    """The named input arrays of a row (``instances``) or columnar (``inputs``) request."""
    names = signature.input_names
    if row_format:
        if not isinstance(value, list):
            raise invalid("'instances' must be a list")
        if not value:
            raise invalid("No values in 'instances' array")  # TF Serving's words
        if all(isinstance(row, dict) for row in value):
            keys = set(value[0])
            if any(set(row) != keys for row in value):
                raise invalid("every object in 'instances' must have the same keys")
            signature.check_input_names(keys)
            return {
                k: from_json([row[k] for row in value], signature.input_dtype(k), k) for k in keys
            }
        if len(names) != 1:
            raise invalid(f"the signature has inputs {names}: give each instance as an object")
        return {names[0]: from_json(value, signature.input_dtype(names[0]), names[0])}
    if isinstance(value, dict):
        signature.check_input_names(value)
        return {k: from_json(v, signature.input_dtype(k), k) for k, v in value.items()}
    if len(names) != 1:
        raise invalid(f"the signature has inputs {names}: give 'inputs' as an object")
    return {names[0]: from_json(value, signature.input_dtype(names[0]), names[0])}


def predict_json(registry: ModelRegistry, spec: model_pb2.ModelSpec, body: Any) -> dict:
    """The JSON answer to a ``:predict`` body, in the format the body used."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    if ("instances" in body) == ("inputs" in body):
        raise invalid("the request must have exactly one of 'instances' or 'inputs'")
    signature_name = body.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid("'signature_name' must be a string")
    loaded = service.resolve(registry, spec)
    signature = loaded.signature(signature_name)
    row_format = "instances" in body
    inputs = _inputs(signature, body["instances" if row_format else "inputs"], row_format)
    outputs = service.run_signature(signature, inputs)
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


class RestHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection; ``server.registry`` and ``server.max_body`` are set by us."""

    protocol_version = "HTTP/1.1"
    server_version = "dann-serve"
    # Headers and body leave in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms) on every kept-alive request.
    disable_nagle_algorithm = True
    # A client that stalls mid-request (or idles on a kept-alive connection) is
    # dropped after this many seconds instead of holding a handler thread forever.
    timeout = 60

    def log_message(self, format: str, *args) -> None:
        log.debug("rest: " + format, *args)

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method: str) -> dict:
        match = _URL.match(self.path.split("?", 1)[0])
        verb = match["verb"] if match else None
        if match and method == "GET" and verb is None:
            request = get_model_status_pb2.GetModelStatusRequest(model_spec=_spec(match))
            return _message_json(service.model_status(self.server.registry, request))
        if match and method == "GET" and verb == "/metadata":
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=_spec(match), metadata_field=[service.SIGNATURE_DEF_FIELD]
            )
            return _message_json(service.model_metadata(self.server.registry, request))
        if match and method == "POST" and verb == ":predict":
            return predict_json(self.server.registry, _spec(match), self._json_body())
        if match and method == "POST" and verb in (":classify", ":regress"):
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED, f"{verb[1:]} is not implemented by dann-serve"
            )
        raise not_found(f"Malformed request: {method} {self.path}")

    def _json_body(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise invalid("a POST needs a Content-Length header")
        if int(length) > self.server.max_body:
            self.close_connection = True  # the body stays unread
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request body of {length} bytes is over the limit of {self.server.max_body}",
            )
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            # RecursionError: arrays nested deeper than the parser's stack allows.
            raise invalid(f"JSON Parse error: {error}") from None

    def _handle(self, method: str) -> None:
        try:
            self._send(200, self._route(method))
        except ServingError as error:
            self._send(error.http_status, {"error": error.message})
        except Exception as error:
            log.exception("internal error on %s %s", method, self.path)
            self._send(500, {"error": f"{type(error).__name__}: {error}"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


class RestServer(ThreadingHTTPServer):
    """Threaded HTTP server holding the registry its handlers read."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: ModelRegistry, max_body: int) -> None:
        super().__init__(address, RestHandler)
        self.registry = registry
        self.max_body = max_body

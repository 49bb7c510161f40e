"""The toy model server's REST front: TensorFlow Serving's JSON routes over ``ToyServing``.

A real HTTP/1.1 server on a local port, keep-alive included, answering
``GET /v1/models/<m>[/versions/<v>|/labels/<l>][/metadata]`` and ``POST ...:predict``
(columnar ``inputs``; ``{"b64": ...}`` PNGs for ``predict_image``) with the same toy
model, knobs and checks as the gRPC one, so that the client's REST transport (URLs,
JSON, status codes, retries, deadlines) is tested over a real socket without
TensorFlow. Errors are ``{"error": ...}`` with TensorFlow Serving's HTTP statuses.
"""

from __future__ import annotations

import base64
import io
import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import json_format
from PIL import Image
from toy_serving import IMAGE_SIGNATURE, ToyServing

from dann_client import messages

_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>/metadata|:predict)?$"
)
_HTTP = {"NOT_FOUND": 404, "UNAVAILABLE": 503, "INVALID_ARGUMENT": 400}
_HTTP["FAILED_PRECONDITION"] = 400


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class _Context:
    """Stands in for a gRPC servicer context: ``abort`` raises."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def _as_json(message) -> dict:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class ToyRest:
    """``ToyServing`` behind HTTP at ``url``; ``requests`` lists (method, path) seen.
    ``drop_idle`` closes each connection after its answer without saying so, as a
    server does with an idle keep-alive connection."""

    def __init__(self, servicer: ToyServing, tls: tuple[Path, Path] | None = None) -> None:
        self.servicer = servicer
        self.requests: list[tuple[str, str]] = []
        self.drop_idle = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        if tls is not None:  # (certificate, key): HTTPS for the name localhost
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        self.servicer.reset()
        self.requests.clear()
        self.drop_idle = False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def route(self, method: str, path: str, body: bytes) -> dict:
        self.requests.append((method, path))
        match = _URL.match(path)
        if match is None:
            raise Aborted(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")
        spec = messages.ModelSpec(name=match["name"])
        if match["version"]:
            spec.version.value = int(match["version"])
        elif match["label"]:
            spec.version_label = match["label"]
        context, servicer = _Context(), self.servicer
        if method == "GET" and match["verb"] is None:
            request = messages.GetModelStatusRequest(model_spec=spec)
            return _as_json(servicer.get_model_status(request, context))
        if method == "GET" and match["verb"] == "/metadata":
            request = messages.GetModelMetadataRequest(model_spec=spec)
            response = servicer.get_model_metadata(request, context)
            packed = response.metadata["signature_def"].value
            signatures = _as_json(messages.SignatureDefMap.FromString(packed))
            return {
                "model_spec": _as_json(response.model_spec),
                "metadata": {"signature_def": signatures},
            }
        if method == "POST" and match["verb"] == ":predict":
            return self._predict(spec, json.loads(body), context)
        raise Aborted(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")

    def _predict(self, spec, body: dict, context: _Context) -> dict:
        servicer = self.servicer
        servicer._refuse_if_unavailable(context)
        time.sleep(servicer.delay)
        servicer._check_model(spec, context)
        signature = body.get("signature_name") or "serving_default"
        values = body["inputs"]
        if signature == IMAGE_SIGNATURE:
            images = np.stack([_decode(value["b64"]) for value in values])
        elif all(type(v) is int for v in np.asarray(values).ravel().tolist()):
            images = np.asarray(values, np.uint8)
        else:
            images = np.asarray(values, np.float32)
        outputs = servicer.answer(signature, images, context)
        return {"outputs": {name: value.tolist() for name, value in outputs.items()}}


def _decode(text: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        return np.asarray(image.convert("RGB"))


def _handler(toy: ToyRest) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                status, payload = 200, toy.route(method, self.path, body)
            except Aborted as error:
                status, payload = _HTTP.get(error.code.name, 500), {"error": error.details}
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                self.close_connection = True
                return
            if toy.drop_idle:
                self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    return Handler

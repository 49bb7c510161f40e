"""The REST API's OpenAPI 3.1 description, served at ``GET /v1/openapi.json``.

Built from the server's own facts: the version and label rules of the model config,
the HTTP codes the shared status notion maps each refusal to, the messages' descriptors
and the modules that write the other bodies (:mod:`openapi_schemas`). It documents a
response code only where the server answers it, so that a fuzzer held to it (schemathesis,
``python -m bench.fuzz_api``) finds any answer the description does not foresee.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import grpc
import numpy as np

from dann_client.contract import (
    DEFAULT_MODEL,
    IMAGE_SIZE,
    INPUT_SHAPE,
    OPENAPI_PATH,
    PROMETHEUS_PATH,
)
from dann_client.png import encode_png
from dann_serve.runtime import package_versions
from dann_serve.serving import openapi_schemas as schemas
from dann_serve.serving.model_config import LABEL_PATTERN, MAX_VERSION
from dann_serve.serving.openapi_schemas import ERROR, Schema, ref
from dann_serve.serving.page import FILES, MODEL_INPUT_PATH
from dann_serve.serving.status import ServingError

# Every model the server was asked to serve, with versions and labels: the page's list.
MODELS_PATH = "/v1/models"
MODEL_PATH = "/v1/models/{model}"


def _http(code: grpc.StatusCode) -> str:
    """The HTTP code the server answers a refusal with ``code`` with."""
    return str(ServingError(code, "").http_status)


INVALID = _http(grpc.StatusCode.INVALID_ARGUMENT)  # also FAILED_PRECONDITION's
NOT_FOUND = _http(grpc.StatusCode.NOT_FOUND)
EXHAUSTED = _http(grpc.StatusCode.RESOURCE_EXHAUSTED)
UNIMPLEMENTED = _http(grpc.StatusCode.UNIMPLEMENTED)
DEADLINE = _http(grpc.StatusCode.DEADLINE_EXCEEDED)
HEAD_TOO_LARGE = "431"  # h11's answer to a request head over the HTTP server's bound
# What the HTTP layer answers any request with, before or instead of its route, with
# the codes of the same statuses: a malformed request, a head over its bound, a body
# over the limit or no room to wait, the request's deadline passed.
HTTP_LAYER = (INVALID, HEAD_TOO_LARGE, EXHAUSTED, DEADLINE)
_REFUSALS = {
    INVALID: "Malformed: bad HTTP framing, an invalid argument, or a precondition not met.",
    NOT_FOUND: "No such route, model, version or version loaded yet.",
    EXHAUSTED: "Over a size bound, or too many requests waiting.",
    HEAD_TOO_LARGE: "Request head over its limit.",
    UNIMPLEMENTED: "Not implemented by dann-serve.",
    DEADLINE: "The request's deadline passed.",
}

_NAME = {"type": "string", "pattern": "^[^/:]+$"}
_PARAMETERS: dict[str, Schema] = {
    "model": {
        "description": "The model's name, as written in the URL (not percent-decoded).",
        "schema": {**_NAME, "examples": [DEFAULT_MODEL]},
    },
    "version": {
        "description": "A version number.",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_VERSION, "examples": [1]},
    },
    "label": {
        "description": "A version label of the model config (`stable`, `canary`).",
        "schema": {"type": "string", "pattern": f"^{LABEL_PATTERN.pattern}$"},
    },
}
# The three ways a URL names a model version: (path, its parameters, what it picks).
_VERSION_CHOICES = (
    ("", ("model",), "the newest version"),
    ("/versions/{version}", ("model", "version"), "that version"),
    ("/labels/{label}", ("model", "label"), "the version the label names"),
)


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _refusals(*codes: str) -> dict[str, Schema]:
    """The error answers ``codes``, and the HTTP layer's, by reference."""
    return {
        code: {"$ref": f"#/components/responses/{code}"} for code in sorted({*codes, *HTTP_LAYER})
    }


def _responses(answer: Schema, *refusals: str) -> dict[str, Schema]:
    return {"200": answer, **_refusals(*refusals)}


def _operation(
    operation_id: str, summary: str, parameters: tuple[str, ...], responses: dict
) -> Schema:
    return {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [{"$ref": f"#/components/parameters/{name}"} for name in parameters],
        "responses": responses,
    }


def _predict(operation_id: str, picks: str, parameters: tuple[str, ...]) -> Schema:
    answer = _json(ref("PredictResponse"), "The outputs")
    operation = _operation(
        operation_id,
        f"Run a signature of {picks} on a batch",
        parameters,
        _responses(answer, INVALID, NOT_FOUND, EXHAUSTED),
    )
    content = {"application/json": {"schema": ref("PredictRequest")}}
    operation["requestBody"] = {"required": True, "content": content}
    return operation


def _unimplemented(verb: str, operation_id: str, parameters: tuple[str, ...]) -> Schema:
    """classify and regress: TensorFlow Serving's routes for tf.Example input, which
    this server refuses whatever the body, without reading it (NOT_FOUND: a URL whose
    version is no number is no route)."""
    summary = f"TensorFlow Serving's {verb}: not implemented"
    responses = _refusals(NOT_FOUND, UNIMPLEMENTED)
    operation = _operation(operation_id, summary, parameters, responses)
    operation["requestBody"] = {"content": {"application/json": {"schema": {}}}}
    return operation


def _model_operations(suffix: str, parameters: tuple[str, ...], picks: str) -> dict[str, Schema]:
    """The paths of one way of naming a version: status, metadata, predict, classify,
    regress and monitor, as TensorFlow Serving's routes (the monitor is ours)."""
    by = {"": "", "/versions/{version}": "ByVersion", "/labels/{label}": "ByLabel"}[suffix]
    named = () if suffix == "" else (INVALID,)  # a version over int64, or an unknown label
    base = MODEL_PATH + suffix
    status = _json(ref("tensorflow.serving.GetModelStatusResponse"), "Version states")
    metadata = _json(ref("tensorflow.serving.GetModelMetadataResponse"), "Its signatures")
    monitor = _json(ref("VersionMonitor" if suffix else "ModelMonitor"), "The figures")
    return {
        base: {
            "get": _operation(
                "getModelStatus" + by,
                f"The state of {picks if suffix else 'each version'}",
                parameters,
                _responses(status, NOT_FOUND, *named),
            )
        },
        base + "/metadata": {
            "get": _operation(
                "getModelMetadata" + by,
                f"The signatures of {picks} (answered once it is loaded)",
                parameters,
                _responses(metadata, NOT_FOUND, *named),
            )
        },
        base + ":predict": {"post": _predict("predict" + by, picks, parameters)},
        base + ":classify": {"post": _unimplemented("classify", "classify" + by, parameters)},
        base + ":regress": {"post": _unimplemented("regress", "regress" + by, parameters)},
        base + "/monitor": {
            "get": _operation(
                "getMonitor" + by,
                f"The live monitor's figures of {picks if suffix else 'each served version'}",
                parameters,
                # INVALID: FAILED_PRECONDITION when the server runs with --no-monitor
                _responses(monitor, INVALID, NOT_FOUND),
            )
        },
    }


def _server_paths() -> dict[str, Schema]:
    """The routes beside the models': the page, this description, the metrics page."""
    metrics = {
        "summary": "Prometheus metrics, under TensorFlow Serving's names and ours",
        "responses": _responses(
            {
                "description": "The metrics",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        ),
    }
    page = {
        "operationId": "getPage",
        "summary": "The web page (404 when the server runs with --no-ui)",
        "responses": _responses(
            {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}},
            NOT_FOUND,
        ),
    }
    description = _json(
        {"type": "object", "required": ["openapi", "info", "paths"]}, "This description"
    )
    models = _json(ref("ModelList"), "Every model to serve, its versions and labels")
    return {
        "/": {"get": page, "head": {**page, "operationId": "headPage"}},
        **_page_paths(),
        MODELS_PATH: {
            "get": {
                "operationId": "listModels",
                "summary": "Every model the server was asked to serve (the page's list)",
                "responses": _responses(models),
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This description",
                "responses": _responses(description),
            }
        },
        PROMETHEUS_PATH: {
            "get": {**metrics, "operationId": "getMetrics"},
            "head": {**metrics, "operationId": "headMetrics"},
        },
    }


def _page_paths() -> dict[str, Schema]:
    """The page's files, and the image as the model sees it; absent with --no-ui."""
    paths: dict[str, Schema] = {}
    for path, (name, content_type) in FILES.items():
        if path == "/":
            continue
        answer = {
            "description": f"The page's {name}",
            "content": {content_type.decode(): {"schema": {"type": "string"}}},
        }
        stem = name.replace(".", "_")
        paths[path] = {
            "get": {"operationId": f"get_{stem}", "responses": _responses(answer, NOT_FOUND)},
            "head": {"operationId": f"head_{stem}", "responses": _responses(answer, NOT_FOUND)},
        }
    pixels = _json(ref("ModelInput"), "The image as the model sees it")
    paths[MODEL_INPUT_PATH] = {
        "post": {
            "operationId": "modelInput",
            "summary": "An image file laid out as the client lays it out for the model",
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            },
            "responses": _responses(pixels, INVALID, NOT_FOUND),
        }
    }
    return paths


def _example_png() -> str:
    """One blank image as a PNG file in base64: the predict body's example."""
    pixels = np.zeros(INPUT_SHAPE, np.uint8)
    pixels[IMAGE_SIZE // 4 : -IMAGE_SIZE // 4, IMAGE_SIZE // 2 - 2 : IMAGE_SIZE // 2 + 2] = 255
    return base64.b64encode(encode_png(pixels)).decode()


def _components() -> Schema:
    return {
        "schemas": {
            "Error": ERROR,
            **schemas.proto_schemas(),
            **schemas.tensor_schemas(),
            **schemas.predict_schemas(_example_png()),
            **schemas.monitor_schemas(),
            **schemas.page_schemas(),
        },
        "parameters": {
            name: {"name": name, "in": "path", "required": True, **parameter}
            for name, parameter in _PARAMETERS.items()
        },
        "responses": {code: _json(ref("Error"), why) for code, why in sorted(_REFUSALS.items())},
    }


@functools.cache
def description() -> dict[str, Any]:
    """The whole description (made once: it depends on nothing the server changes)."""
    paths = _server_paths()
    for suffix, parameters, picks in _VERSION_CHOICES:
        paths.update(_model_operations(suffix, parameters, picks))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dann-serve REST API",
            "version": package_versions(["dann-serve"]).get("dann-serve", "0+unknown"),
            "description": (
                "TensorFlow Serving's REST API (status, metadata, predict; classify and"
                " regress answer 501) and dann-serve's own routes (the live monitor, the"
                ' metrics page, the web page). Errors are `{"error": "..."}` with'
                " TensorFlow Serving's HTTP code for the status."
            ),
        },
        "paths": paths,
        "components": _components(),
    }

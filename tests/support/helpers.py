"""Requests to a running ``dann-serve serve``, for the test modules that talk to one:
official ``tensorflow-serving-api`` messages over gRPC, JSON over REST; the private copy
of the export such a server is given; the deployment files as parsed.

Plain functions, not fixtures: tests build many requests of different shapes. Test
modules import this module; no test module imports another.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]


def predict_request(
    images: np.ndarray, signature: str = "", version: int | None = None, model: str = "dann"
):
    """A ``PredictRequest`` for ``images`` as they are (their dtype and shape), encoded by
    TensorFlow's own ``make_tensor_proto``; ``signature`` "" asks for the default."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    return request


def outputs(response) -> dict[str, np.ndarray]:
    """A ``PredictResponse``'s outputs as arrays, by name."""
    import tensorflow as tf

    return {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}


def rest(server, path: str, body: dict | bytes | None = None) -> tuple[int, dict]:
    """GET ``path`` of ``server``'s REST API (POST when there is a body: a dict is sent as
    JSON, bytes as they are); the status and the decoded JSON answer."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.rest_url + path, data=data, method="GET" if data is None else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def dockerfile_instruction(name: str) -> list[str]:
    """The exec-form (JSON) arguments of the Dockerfile's one ``name`` instruction
    (continued lines joined; HEALTHCHECK's options and its ``CMD`` dropped)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [arguments] = re.findall(rf"^{name}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$", text, re.M)
    return json.loads(arguments)


def k8s_documents() -> list[dict]:
    """Every document of ``deploy/k8s/*.yaml``."""
    return [
        document
        for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def k8s_container() -> dict:
    """The one container of the Deployment in ``deploy/k8s``."""
    [deployment] = [doc for doc in k8s_documents() if doc["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def models_copy(exported_model: Path, where: Path) -> Path:
    """A private copy, at ``where / "models"``, of the model directory that holds the
    shared export (``<models>/dann/<version>``), for a test that serves, adds versions
    to or breaks its own; returns the copy's path."""
    model_dir = where / "models"
    shutil.copytree(exported_model.parent.parent, model_dir)
    return model_dir

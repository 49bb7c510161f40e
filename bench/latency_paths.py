"""The ways ``bench/serve_latency.py`` asks the exported model for predictions: the
SavedModel in process, ONNX Runtime, gRPC (with the official tensorflow-serving-api
stubs; float32 or uint8 pixels), REST (JSON numbers, or base64 PNG files to
``predict_image``), and a gRPC server that runs no model at all, the floor under any
Python server's overhead. Each ``*_call`` returns a function from a batch of images to
the answer, so that the benchmark can time them all alike.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
import numpy as np
import onnxruntime
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from dann_client.contract import PREDICT_IMAGE, SERVER_MAX_MESSAGE_BYTES
from dann_client.preprocessing import encode_png
from dann_client.tensors import fill_tensor_proto, from_tensor_proto
from dann_serve.runtime import reuse_large_buffers

SIGNATURE = "predict_label"
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", SERVER_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", SERVER_MAX_MESSAGE_BYTES),
]


def in_process_call(version_dir: Path) -> Callable[[np.ndarray], object]:
    function = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]
    return lambda images: {k: v.numpy() for k, v in function(images=images).items()}


def onnx_call(version_dir: Path, options: dict | None = None) -> Callable[[np.ndarray], object]:
    """``predict_label.onnx`` in an ONNX Runtime session (default options unless given)."""
    settings = onnxruntime.SessionOptions()
    for name, value in (options or {}).items():
        if name == "config":
            for key, entry in value.items():
                settings.add_session_config_entry(key, entry)
        else:
            setattr(settings, name, value)
    path = version_dir / "onnx" / f"{SIGNATURE}.onnx"
    session = onnxruntime.InferenceSession(str(path), settings, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"images": images})


def onnx_graph(version_dir: Path) -> dict:
    """Node count and the most frequent node types of the exported ONNX graph."""
    import collections

    import onnx

    model = onnx.load(str(version_dir / "onnx" / f"{SIGNATURE}.onnx"))
    kinds = collections.Counter(node.op_type for node in model.graph.node)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return {"nodes": len(model.graph.node), "opset": opset, "op_types": dict(kinds.most_common())}


def grpc_call(
    channel: grpc.Channel, signature: str = SIGNATURE, pixels: dict[int, np.ndarray] | None = None
) -> Callable[[np.ndarray], object]:
    """Predict over gRPC; with ``pixels`` (uint8 batches by size), those are sent in
    place of the float32 images of the same size."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def call(images: np.ndarray) -> dict[str, np.ndarray]:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "dann"
        request.model_spec.signature_name = signature
        fill_tensor_proto(request.inputs["images"], pixels[len(images)] if pixels else images)
        response = stub.Predict(request, timeout=60)
        return {name: from_tensor_proto(tensor) for name, tensor in response.outputs.items()}

    return call


class NoModelPrediction(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict that decodes the images and answers zeros of the right shapes."""

    def Predict(self, request, context):
        count = len(from_tensor_proto(request.inputs["images"]))
        response = predict_pb2.PredictResponse()
        fill_tensor_proto(response.outputs["label"], np.zeros(count, np.int64))
        fill_tensor_proto(response.outputs["probabilities"], np.zeros((count, 10), np.float32))
        return response


def serve_no_model(port: int) -> None:
    """Run the no-model server (in a child process) until it is killed."""
    reuse_large_buffers()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=GRPC_OPTIONS)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(NoModelPrediction(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def rest_call(
    rest_url: str, files: dict[int, list[str]] | None = None
) -> Callable[[np.ndarray], object]:
    """Predict over REST (JSON instances); with ``files`` (base64 PNGs by batch size),
    those go to ``predict_image`` as ``{"b64": ...}`` in place of the float32 images."""
    host_port = rest_url.removeprefix("http://")
    connection = http.client.HTTPConnection(host_port, timeout=60)  # kept alive

    def call(images: np.ndarray) -> dict:
        if files is None:
            body = {"signature_name": SIGNATURE, "instances": images.tolist()}
        else:
            instances = [{"b64": text} for text in files[len(images)]]
            body = {"signature_name": PREDICT_IMAGE, "instances": instances}
        connection.request(
            "POST",
            "/v1/models/dann:predict",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"REST {response.status}: {payload[:200]!r}")
        return json.loads(payload)

    return call


def png_base64(pixels: np.ndarray) -> list[str]:
    """Each uint8 image as base64 text of a PNG, encoded as the client encodes them."""
    return [base64.b64encode(encode_png(image)).decode() for image in pixels]

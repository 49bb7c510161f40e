"""TensorFlow Serving's documented way to write a client, as its example
``resnet_client_grpc.py`` does: the ``tensorflow_serving.apis`` stubs,
``tf.make_tensor_proto``, one image per ``Predict`` call, ``tf.make_ndarray`` on the
answer. The baseline of ``client_throughput.py`` and ``client_startup.py``, in a module
of its own so that a fresh process running it imports no more than such a client would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from dann_client.contract import PREDICT_LABEL as SIGNATURE
from dann_client.preprocessing import image_to_array, to_model_input


def documented_request(path: Path) -> predict_pb2.PredictRequest:
    """One image as TensorFlow Serving's example client sends it: PIL, make_tensor_proto."""
    with Image.open(path) as image:
        data = to_model_input(image_to_array(image)[None])
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "dann"
    request.model_spec.signature_name = SIGNATURE
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(data, shape=data.shape))
    return request


def baseline(address: str, paths: list[Path]) -> Callable[[], int]:
    """TensorFlow Serving's documented client: one image per request, official stubs."""

    def run() -> int:
        channel = grpc.insecure_channel(address)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with open(os.devnull, "w") as out:
            for path in paths:
                result = stub.Predict(documented_request(path), 10.0)  # 10 secs timeout
                probabilities = tf.make_ndarray(result.outputs["probabilities"])[0]
                label = int(tf.make_ndarray(result.outputs["label"])[0])
                record = {
                    "path": str(path),
                    "label": label,
                    "confidence": round(float(probabilities[label]), 6),
                    "probabilities": [round(float(p), 6) for p in probabilities],
                }
                out.write(json.dumps(record) + "\n")
        channel.close()
        return len(paths)

    return run


def baseline_labels(address: str, paths: list[Path]) -> list[int]:
    """The baseline's labels, to check that both sides answer the same question."""
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return [
            int(tf.make_ndarray(stub.Predict(documented_request(p), 10.0).outputs["label"])[0])
            for p in paths
        ]

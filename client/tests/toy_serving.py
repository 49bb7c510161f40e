"""A toy model server for the client's tests.

It is a real gRPC server on a local port that speaks TensorFlow
Serving's API (with the client's own messages) around a trivial "model", so that
transport behaviour (retries, deadlines, status codes, batching, TLS) is tested
over a real wire. Message compatibility with the official API is tested
separately, against ``tensorflow_serving.apis``. ``SlowProxy`` puts a server (or
nothing) at the far end of a slow connection.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

from dann_client import messages
from dann_client.tensors import from_tensor_proto, to_tensor_proto

MODEL_VERSION = 3
CLASSES = {"predict_label": 10, "classify_domain": 2, "serving_default": 10}
UINT8_SIGNATURE = "predict_label_uint8"  # listed and answered when ``uint8`` is set
IMAGE_SIGNATURE = "predict_image"  # listed when ``image`` is set; answered over REST only


def toy_answers(images: np.ndarray, classes: int) -> np.ndarray:
    """The toy model: class = mean brightness bucket, so tests can choose answers."""
    means = images.reshape(len(images), -1).mean(axis=1)
    return np.minimum((means * classes).astype(np.int64), classes - 1)


def grey_image(path: Path, level: int, size: tuple[int, int] = (32, 32)) -> Path:
    """A uniform grey image; with the toy model, level 255*(k+0.5)/10 answers label k."""
    Image.new("L", size, level).save(path)
    return path


def level_for(label: int, classes: int = 10) -> int:
    return round(255 * (label + 0.5) / classes)


class ToyServing:
    """Handlers for PredictionService and ModelService, with knobs for failures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.batch_sizes: list[int] = []
        self.unavailable_first = 0  # answer UNAVAILABLE to this many calls first
        self.delay = 0.0  # seconds to sleep before answering Predict
        self.active = 0  # Predict calls being answered right now
        self.most_active = 0  # the most there ever were at once
        self.uint8 = False  # whether the model has predict_label_uint8, as new exports do
        self.image = False  # whether it has predict_image (string input)
        self.received: list[tuple[str, str]] = []  # (signature, dtype) of each Predict
        self.metadata_calls = 0
        self.metadata_refusal: grpc.StatusCode | None = None  # GetModelMetadata's answer

    def _refuse_if_unavailable(self, context: grpc.ServicerContext) -> None:
        with self.lock:
            if self.unavailable_first > 0:
                self.unavailable_first -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "toy server is warming up")

    def _check_model(self, spec, context: grpc.ServicerContext) -> None:
        if spec.name != "dann":
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {spec.name}")
        if spec.HasField("version") and spec.version.value != MODEL_VERSION:
            context.abort(grpc.StatusCode.NOT_FOUND, f"version {spec.version.value} not found")

    def predict(self, request, context: grpc.ServicerContext):
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            return self._predict(request, context)
        finally:
            with self.lock:
                self.active -= 1

    def _predict(self, request, context: grpc.ServicerContext):
        self._refuse_if_unavailable(context)
        time.sleep(self.delay)
        self._check_model(request.model_spec, context)
        signature = request.model_spec.signature_name or "serving_default"
        if "images" not in request.inputs:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing input images")
        images = from_tensor_proto(request.inputs["images"])
        outputs = self.answer(signature, images, context)
        response = messages.PredictResponse()
        response.model_spec.name = "dann"
        response.model_spec.version.value = MODEL_VERSION
        response.model_spec.signature_name = signature
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(to_tensor_proto(value))
        return response

    def answer(self, signature: str, images: np.ndarray, context) -> dict[str, np.ndarray]:
        """The toy model's outputs for a batch (the pixels of predict_image's PNGs)."""
        if signature not in self._signatures():
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"no signature {signature}")
        takes_uint8 = signature in (UINT8_SIGNATURE, IMAGE_SIGNATURE)
        want = np.uint8 if takes_uint8 else np.float32
        if images.dtype != want or images.shape[1:] != (32, 32, 3):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad input {images.shape}")
        with self.lock:
            self.batch_sizes.append(len(images))
            self.received.append((signature, images.dtype.name))
        if takes_uint8:
            images = images.astype(np.float32) / np.float32(255)
        classes = self._signatures()[signature]
        answers = toy_answers(images, classes)
        probabilities = np.full((len(images), classes), 0.1 / classes, np.float32)
        probabilities[np.arange(len(images)), answers] += np.float32(0.9)
        name = "domain" if signature == "classify_domain" else "label"
        return {"probabilities": probabilities, name: answers}

    def get_model_status(self, request, context: grpc.ServicerContext):
        self._refuse_if_unavailable(context)
        self._check_model(request.model_spec, context)
        response = messages.GetModelStatusResponse()
        response.model_version_status.add(version=MODEL_VERSION, state=30)  # AVAILABLE
        return response

    def _signatures(self) -> dict[str, int]:
        twins = {UINT8_SIGNATURE: 10} if self.uint8 else {}
        twins.update({IMAGE_SIGNATURE: 10} if self.image else {})
        return {**CLASSES, **twins}

    def get_model_metadata(self, request, context: grpc.ServicerContext):
        with self.lock:
            self.metadata_calls += 1
        if self.metadata_refusal is not None:
            context.abort(self.metadata_refusal, "metadata refused by the toy server")
        self._refuse_if_unavailable(context)
        self._check_model(request.model_spec, context)
        signature_map = messages.SignatureDefMap()
        for name, classes in self._signatures().items():
            definition = signature_map.signature_def[name]
            definition.method_name = "tensorflow/serving/predict"
            if name == IMAGE_SIGNATURE:
                _tensor_info(definition.inputs["images"], 7, [-1])  # DT_STRING
            else:
                dtype = 4 if name == UINT8_SIGNATURE else 1  # DT_UINT8, DT_FLOAT
                _tensor_info(definition.inputs["images"], dtype, [-1, 32, 32, 3])
            _tensor_info(definition.outputs["probabilities"], 1, [-1, classes])
            answer = "domain" if name == "classify_domain" else "label"
            _tensor_info(definition.outputs[answer], 9, [-1])
        response = messages.GetModelMetadataResponse()
        response.model_spec.name = "dann"
        response.model_spec.version.value = MODEL_VERSION
        packed = response.metadata["signature_def"]
        packed.type_url = messages.SIGNATURE_DEF_MAP_URL
        packed.value = signature_map.SerializeToString()
        return response

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        def unary(method, request_type, response_type):
            return grpc.unary_unary_rpc_method_handler(
                method,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )

        prediction = {
            "Predict": unary(self.predict, messages.PredictRequest, messages.PredictResponse),
            "GetModelMetadata": unary(
                self.get_model_metadata,
                messages.GetModelMetadataRequest,
                messages.GetModelMetadataResponse,
            ),
        }
        model = {
            "GetModelStatus": unary(
                self.get_model_status,
                messages.GetModelStatusRequest,
                messages.GetModelStatusResponse,
            )
        }
        return [
            grpc.method_handlers_generic_handler(
                "tensorflow.serving.PredictionService", prediction
            ),
            grpc.method_handlers_generic_handler("tensorflow.serving.ModelService", model),
        ]


def _tensor_info(info, dtype: int, shape: list[int]) -> None:
    info.dtype = dtype
    for size in shape:
        info.tensor_shape.dim.add(size=size)


def start_server(servicer: ToyServing, bind, credentials=None) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(servicer.handlers())
    port = (
        server.add_secure_port(bind, credentials) if credentials else server.add_insecure_port(bind)
    )
    server.start()
    return server, port


class SlowProxy:
    """A TCP proxy on a local port that holds each new connection ``delay`` seconds
    before it starts forwarding to ``upstream``: a server that far away, as gRPC's
    connection handshake sees it. With no upstream it accepts and never answers."""

    def __init__(self, upstream: str | None, delay: float) -> None:
        self.upstream, self.delay = upstream, delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        if self.upstream is None:
            return
        host, port = self.upstream.rsplit(":", 1)
        server = socket.create_connection((host, int(port)))
        self._sockets.append(server)
        threading.Thread(target=_pump, args=(server, client), daemon=True).start()
        _pump(client, server)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # either side closed

"""The three calls the project serves, in TensorFlow Serving's own messages.

Both front ends use these functions: the gRPC servicers return the messages as they
are, the REST handler converts them to JSON. So a request means the same thing, and
fails with the same code, whichever protocol carries it; and it is counted the same:
each call notes on the request's :class:`~dann_serve.serving.monitoring.Call` which
API it ran on which model, and with what status it ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

from dann_client.tensors import fill_tensor_proto
from dann_serve.serving import monitoring, observers
from dann_serve.serving.limits import Limits
from dann_serve.serving.observers import Served
from dann_serve.serving.registry import LoadedVersion, ModelRegistry
from dann_serve.serving.signature import ServedSignature
from dann_serve.serving.status import invalid
from dann_serve.serving.tensors import declared_shape, numpy_dtype

SIGNATURE_DEF_FIELD = "signature_def"
DEFAULTS = Limits()


def _choice(spec: model_pb2.ModelSpec) -> tuple[str, int | None, str]:
    if not spec.name:
        raise invalid("Missing ModelSpec")
    which = spec.WhichOneof("version_choice")
    version = spec.version.value if which == "version" else None
    label = spec.version_label if which == "version_label" else ""
    return spec.name, version, label


def resolve(registry: ModelRegistry, spec: model_pb2.ModelSpec) -> LoadedVersion:
    """The loaded version a ModelSpec asks for (the newest if it names none). Looked up
    under the registry's lock, so that a label and the versions it names are read from
    the same poll, even while a promotion switches them."""
    with registry.using(*_choice(spec)) as loaded:
        monitoring.note_version(loaded.version)
    return loaded


def _api_call(
    registry: ModelRegistry, api: str, spec: model_pb2.ModelSpec
) -> AbstractContextManager[None]:
    """Count the block as a call of ``api`` on the model ``spec`` names (a name the
    registry does not serve is counted without it)."""
    return monitoring.api_call(api, spec.name, spec.name in registry.model_names())


@contextmanager
def serving(registry: ModelRegistry, spec: model_pb2.ModelSpec) -> Iterator[LoadedVersion]:
    """The version a ModelSpec asks for, kept open until the block ends even if a newer
    one replaces it meanwhile (it is closed when its last request is done). The block
    is one Predict call, counted with the status it ends with."""
    with _api_call(registry, monitoring.PREDICT, spec), registry.using(*_choice(spec)) as loaded:
        monitoring.note_version(loaded.version)
        yield loaded


def response_spec(loaded: LoadedVersion, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=loaded.name, signature_name=signature_name)
    spec.version.value = loaded.version
    return spec


def run_signature(
    loaded: LoadedVersion,
    signature: ServedSignature,
    inputs: Mapping[str, np.ndarray],
    output_filter: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """Check decoded inputs against the signature, run it, and show the answer to the
    observers (the monitor, the capture)."""
    signature.check_input_names(inputs)
    outputs = signature.check_output_filter(output_filter)
    for name, array in inputs.items():
        signature.check_input_shape(name, array.shape)
    answer = signature.run(inputs, outputs)
    observers.notify(Served(loaded.name, loaded.version, signature.key, inputs, answer))
    return answer


def predict(
    registry: ModelRegistry, request: predict_pb2.PredictRequest, limits: Limits = DEFAULTS
) -> predict_pb2.PredictResponse:
    """PredictionService.Predict. Each input's declared dtype and shape are checked
    against the signature and ``limits`` before it is decoded, so a few bytes claiming a
    huge shape are refused with INVALID_ARGUMENT without allocating it."""
    with serving(registry, request.model_spec) as loaded:
        signature = loaded.signature(request.model_spec.signature_name)
        signature.check_input_names(request.inputs)
        inputs = {}
        for name, tensor in request.inputs.items():
            signature.check_input_dtype(name, tensor.dtype)
            shape = declared_shape(tensor, name)
            limits.check_shape(name, shape, numpy_dtype(tensor.dtype).itemsize)
            signature.check_input_shape(name, shape)
            inputs[name] = signature.read_input(name, tensor, limits)
        outputs = run_signature(loaded, signature, inputs, request.output_filter)
    response = predict_pb2.PredictResponse(model_spec=response_spec(loaded, signature.key))
    for name, array in outputs.items():
        fill_tensor_proto(response.outputs[name], array)
    return response


def model_metadata(
    registry: ModelRegistry, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """PredictionService.GetModelMetadata: the SignatureDefMap packed in an Any."""
    with _api_call(registry, monitoring.GET_MODEL_METADATA, request.model_spec):
        return _model_metadata(registry, request)


def _model_metadata(
    registry: ModelRegistry, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    if not request.metadata_field:
        raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
    unsupported = [f for f in request.metadata_field if f != SIGNATURE_DEF_FIELD]
    if unsupported:
        raise invalid(f"Metadata field {unsupported[0]} is not supported")
    # Answered only from a loaded version, as TensorFlow Serving answers it (a servable
    # handle): so this call fails until a version is AVAILABLE, which makes it the
    # readiness probe (deploy/k8s), where GetModelStatus answers while loading too.
    loaded = resolve(registry, request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=response_spec(loaded))
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, definition in loaded.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(definition)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def model_status(
    registry: ModelRegistry, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    """ModelService.GetModelStatus: the state of each version the server knows of."""
    with _api_call(registry, monitoring.GET_MODEL_STATUS, request.model_spec):
        return _model_status(registry, request)


def _model_status(
    registry: ModelRegistry, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    spec = request.model_spec
    if not spec.name:
        raise invalid("Missing ModelSpec")
    which = spec.WhichOneof("version_choice")
    version: int | None
    if which == "version_label":
        version = resolve(registry, spec).version
    else:
        version = spec.version.value if which == "version" else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state, error in registry.status(spec.name, version):
        entry = response.model_version_status.add(version=number, state=state)
        entry.status.error_code = 2 if error else 0  # UNKNOWN or OK
        entry.status.error_message = error
    return response

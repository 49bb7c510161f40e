"""TensorFlow Serving's request and response messages, without TensorFlow.

The messages come from the package's own .proto sources (``protos/``), compiled
into ``protos/serving.binpb`` by ``client/tools/compile_protos.py``. They keep the
official proto packages, names and field numbers, so they are the same messages
on the wire, but they are loaded into a *private* descriptor pool: protobuf's
default pool refuses a second definition of ``tensorflow.serving.PredictRequest``,
and a process may well hold the official ``tensorflow-serving-api`` modules too
(the conformance tests, or the training side that exports warm-up records).

Importing this module costs a few milliseconds; the CLI imports it only when a
command actually talks to a server.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Any, TypeAlias

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_DESCRIPTOR_SET = files(__package__) / "protos" / "serving.binpb"

POOL = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(_DESCRIPTOR_SET.read_bytes()).file:
    POOL.Add(_file)


def _message(full_name: str) -> Any:
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))


def _method_path(service: str, method: str) -> str:
    """gRPC path of one RPC, taken from the service definition so it cannot drift."""
    descriptor = POOL.FindServiceByName(service).FindMethodByName(method)
    return f"/{descriptor.containing_service.full_name}/{descriptor.name}"


TensorShapeProto = _message("tensorflow.TensorShapeProto")
SignatureDef = _message("tensorflow.SignatureDef")
Int64Value = _message("google.protobuf.Int64Value")
PredictRequest = _message("tensorflow.serving.PredictRequest")
PredictResponse = _message("tensorflow.serving.PredictResponse")
SignatureDefMap = _message("tensorflow.serving.SignatureDefMap")
GetModelMetadataRequest = _message("tensorflow.serving.GetModelMetadataRequest")
GetModelStatusRequest = _message("tensorflow.serving.GetModelStatusRequest")
ModelVersionStatus = _message("tensorflow.serving.ModelVersionStatus")
# The classes are made at run time, so a type checker cannot know their fields: to it,
# the ones that annotations name are aliases of Any.
if TYPE_CHECKING:
    TensorProto: TypeAlias = Any
    TensorInfo: TypeAlias = Any
    ModelSpec: TypeAlias = Any
    GetModelMetadataResponse: TypeAlias = Any
    GetModelStatusResponse: TypeAlias = Any
else:
    TensorProto = _message("tensorflow.TensorProto")
    TensorInfo = _message("tensorflow.TensorInfo")
    ModelSpec = _message("tensorflow.serving.ModelSpec")
    GetModelMetadataResponse = _message("tensorflow.serving.GetModelMetadataResponse")
    GetModelStatusResponse = _message("tensorflow.serving.GetModelStatusResponse")

DATA_TYPE = POOL.FindEnumTypeByName("tensorflow.DataType")
ERROR_CODE = POOL.FindEnumTypeByName("tensorflow.error.Code")
VERSION_STATE = POOL.FindEnumTypeByName("tensorflow.serving.ModelVersionStatus.State")

PREDICT = _method_path("tensorflow.serving.PredictionService", "Predict")
GET_MODEL_METADATA = _method_path("tensorflow.serving.PredictionService", "GetModelMetadata")
GET_MODEL_STATUS = _method_path("tensorflow.serving.ModelService", "GetModelStatus")

# The type URL under which servers pack SignatureDefMap into an Any.
SIGNATURE_DEF_MAP_URL = "type.googleapis.com/" + SignatureDefMap.DESCRIPTOR.full_name

"""The client's messages against the official tensorflow-serving-api ones.

Requests the client serialises must parse with the official classes into the
expected values, and responses built with the official classes (and TensorFlow's
own tensor encoder) must parse with the client's. Both sets live in one process,
which is also the proof that the client's private descriptor pool coexists with
the official modules in the default pool.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dann_client import messages
from dann_client.service import ModelRef, parse_model_metadata, parse_model_status
from dann_client.tensors import from_tensor_proto, to_tensor_proto

predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
get_model_metadata_pb2 = pytest.importorskip("tensorflow_serving.apis.get_model_metadata_pb2")
get_model_status_pb2 = pytest.importorskip("tensorflow_serving.apis.get_model_status_pb2")
model_pb2 = pytest.importorskip("tensorflow_serving.apis.model_pb2")
status_pb2 = pytest.importorskip("tensorflow_serving.apis.status_pb2")
tf = pytest.importorskip("tensorflow")
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2  # noqa: E402

CASES = {
    "float32": np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32),
    "int64": np.array([[1, -2, 3], [2**40, 0, -(2**62)]], np.int64),
    "empty_float32": np.zeros((0, 32, 32, 3), np.float32),
    "empty_int64": np.zeros((0,), np.int64),
}


@pytest.mark.parametrize("name", CASES)
def test_request_parses_with_official_messages(name):
    array = CASES[name]
    request = messages.PredictRequest(model_spec=ModelRef("dann", version=7).spec("predict_label"))
    request.inputs["images"].CopyFrom(to_tensor_proto(array))
    request.output_filter.append("label")

    official = predict_pb2.PredictRequest.FromString(request.SerializeToString())

    assert official.model_spec.name == "dann"
    assert official.model_spec.version.value == 7
    assert official.model_spec.WhichOneof("version_choice") == "version"
    assert official.model_spec.signature_name == "predict_label"
    assert list(official.output_filter) == ["label"]
    tensor = official.inputs["images"]
    assert tensor.dtype == tf.as_dtype(array.dtype).as_datatype_enum
    assert [d.size for d in tensor.tensor_shape.dim] == list(array.shape)
    decoded = tf.make_ndarray(tensor)
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)
    # Nothing the official parser did not understand.
    assert official.SerializeToString() == request.SerializeToString()


def test_version_label_request_parses_with_official_messages():
    request = messages.PredictRequest(model_spec=ModelRef("dann", label="stable").spec())
    official = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert official.model_spec.WhichOneof("version_choice") == "version_label"
    assert official.model_spec.version_label == "stable"
    assert official.model_spec.signature_name == ""


@pytest.mark.parametrize("name", CASES)
def test_official_response_parses_with_client_messages(name):
    array = CASES[name]
    official = predict_pb2.PredictResponse()
    official.model_spec.name = "dann"
    official.model_spec.version.value = 4
    official.outputs["made_by_tf"].CopyFrom(tf.make_tensor_proto(array))
    content = official.outputs["raw_content"]
    content.CopyFrom(tf.make_tensor_proto(array))
    content.ClearField("float_val")
    content.ClearField("int64_val")
    content.tensor_content = array.astype(array.dtype.newbyteorder("<")).tobytes()

    response = messages.PredictResponse.FromString(official.SerializeToString())

    assert response.model_spec.name == "dann" and response.model_spec.version.value == 4
    for key in ("made_by_tf", "raw_content"):
        decoded = from_tensor_proto(response.outputs[key])
        assert decoded.dtype == array.dtype and decoded.shape == array.shape
        np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize(
    ("field", "values", "dtype"),
    [("float_val", [0.25, 0.5, 0.75], np.float32), ("int64_val", [5, -6, 2**50], np.int64)],
)
def test_typed_fields_decode_like_tensorflow(field, values, dtype):
    """Typed repeated fields, including TensorFlow's 'last value fills the rest' rule."""
    for count in (len(values), 7):
        official = tensor_pb2.TensorProto(dtype=tf.as_dtype(dtype).as_datatype_enum)
        official.tensor_shape.dim.add(size=count)
        getattr(official, field).extend(values)
        mine = messages.TensorProto.FromString(official.SerializeToString())
        np.testing.assert_array_equal(from_tensor_proto(mine), tf.make_ndarray(official))


def test_metadata_messages_conform():
    request = messages.GetModelMetadataRequest(model_spec=ModelRef("dann", version=2).spec())
    request.metadata_field.append("signature_def")
    official_request = get_model_metadata_pb2.GetModelMetadataRequest.FromString(
        request.SerializeToString()
    )
    assert official_request.model_spec.version.value == 2
    assert list(official_request.metadata_field) == ["signature_def"]

    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, answer, classes in [("predict_label", "label", 10), ("classify_domain", "domain", 2)]:
        definition = signature_map.signature_def[name]
        definition.method_name = "tensorflow/serving/predict"
        _info(definition.inputs["images"], tf.float32, [-1, 32, 32, 3], "serving_images:0")
        _info(definition.outputs["probabilities"], tf.float32, [-1, classes], "probs:0")
        _info(definition.outputs[answer], tf.int64, [-1], "answer:0")
    official = get_model_metadata_pb2.GetModelMetadataResponse()
    official.model_spec.name = "dann"
    official.model_spec.version.value = 2
    official.metadata["signature_def"].Pack(signature_map)

    metadata = parse_model_metadata(
        messages.GetModelMetadataResponse.FromString(official.SerializeToString())
    )

    assert metadata.model == "dann" and metadata.version == 2
    assert list(metadata.signatures) == ["classify_domain", "predict_label"]
    label = metadata.signatures["predict_label"]
    assert label.method == "tensorflow/serving/predict"
    assert label.inputs["images"].dtype == "DT_FLOAT"
    assert label.inputs["images"].shape == (-1, 32, 32, 3)
    assert label.outputs["probabilities"].shape == (-1, 10)
    assert label.outputs["label"].dtype == "DT_INT64"
    assert metadata.signatures["classify_domain"].outputs["domain"].shape == (-1,)


def test_status_messages_conform():
    request = messages.GetModelStatusRequest(model_spec=ModelRef("dann", label="canary").spec())
    official_request = get_model_status_pb2.GetModelStatusRequest.FromString(
        request.SerializeToString()
    )
    assert official_request.model_spec.name == "dann"
    assert official_request.model_spec.version_label == "canary"

    official = get_model_status_pb2.GetModelStatusResponse()
    state = get_model_status_pb2.ModelVersionStatus.State
    official.model_version_status.add(version=1, state=state.END)
    failed = official.model_version_status.add(version=2, state=state.AVAILABLE)
    failed.status.error_code = 5  # NOT_FOUND
    failed.status.error_message = "gone"

    statuses = parse_model_status(
        messages.GetModelStatusResponse.FromString(official.SerializeToString()), "dann"
    )

    assert [(s.version, s.state, s.error_code) for s in statuses] == [
        (1, "END", "OK"),
        (2, "AVAILABLE", "NOT_FOUND"),
    ]
    assert statuses[1].error_message == "gone"


OFFICIAL = {
    "tensorflow.TensorShapeProto": tensor_shape_pb2.TensorShapeProto,
    "tensorflow.TensorShapeProto.Dim": tensor_shape_pb2.TensorShapeProto.Dim,
    "tensorflow.TensorProto": tensor_pb2.TensorProto,
    "tensorflow.TensorInfo": meta_graph_pb2.TensorInfo,
    "tensorflow.SignatureDef": meta_graph_pb2.SignatureDef,
    "tensorflow.serving.ModelSpec": model_pb2.ModelSpec,
    "tensorflow.serving.PredictRequest": predict_pb2.PredictRequest,
    "tensorflow.serving.PredictResponse": predict_pb2.PredictResponse,
    "tensorflow.serving.SignatureDefMap": get_model_metadata_pb2.SignatureDefMap,
    "tensorflow.serving.GetModelMetadataRequest": get_model_metadata_pb2.GetModelMetadataRequest,
    "tensorflow.serving.GetModelMetadataResponse": get_model_metadata_pb2.GetModelMetadataResponse,
    "tensorflow.serving.GetModelStatusRequest": get_model_status_pb2.GetModelStatusRequest,
    "tensorflow.serving.GetModelStatusResponse": get_model_status_pb2.GetModelStatusResponse,
    "tensorflow.serving.ModelVersionStatus": get_model_status_pb2.ModelVersionStatus,
    "tensorflow.serving.StatusProto": status_pb2.StatusProto,
}


@pytest.mark.parametrize("full_name", OFFICIAL)
def test_every_field_matches_the_official_definition(full_name):
    """Same full name, and each field the client defines has the official number,
    type, cardinality and oneof, so the two are one message on the wire."""
    mine = messages.POOL.FindMessageTypeByName(full_name)
    theirs = OFFICIAL[full_name].DESCRIPTOR
    assert mine.full_name == theirs.full_name
    for field in mine.fields:
        official_field = theirs.fields_by_name[field.name]
        assert field.number == official_field.number, field.name
        assert field.type == official_field.type, field.name
        assert field.is_repeated == official_field.is_repeated, field.name
        oneof = field.containing_oneof and field.containing_oneof.name
        official_oneof = official_field.containing_oneof and official_field.containing_oneof.name
        if not (official_oneof or "").startswith("_"):  # proto3 `optional` is a synthetic oneof
            assert oneof == official_oneof, field.name
        for target in ("message_type", "enum_type"):
            ours, official_target = getattr(field, target), getattr(official_field, target)
            assert (ours and ours.full_name) == (official_target and official_target.full_name)


def test_enum_numbers_match_the_official_definitions():
    from tensorflow.core.framework import types_pb2

    for mine, theirs in [
        (messages.DATA_TYPE, types_pb2.DataType.DESCRIPTOR),
        (messages.VERSION_STATE, get_model_status_pb2.ModelVersionStatus.State.DESCRIPTOR),
        (
            messages.ERROR_CODE,
            status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type,
        ),
    ]:
        assert mine.full_name == theirs.full_name
        for value in mine.values:
            assert theirs.values_by_name[value.name].number == value.number


def test_method_paths_match_the_official_services():
    from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

    prediction = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"]
    model = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"]
    assert f"/{prediction.full_name}/Predict" == messages.PREDICT
    assert f"/{prediction.full_name}/GetModelMetadata" == messages.GET_MODEL_METADATA
    assert f"/{model.full_name}/GetModelStatus" == messages.GET_MODEL_STATUS


def test_compiled_descriptor_set_matches_the_proto_sources():
    pytest.importorskip("grpc_tools")
    script = Path(__file__).resolve().parents[1] / "tools" / "compile_protos.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def _info(info, dtype, shape, name):
    info.name = name
    info.dtype = dtype.as_datatype_enum
    info.tensor_shape.CopyFrom(tf.TensorShape([None if s == -1 else s for s in shape]).as_proto())

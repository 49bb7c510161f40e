"""The JSON Schemas of the REST API's bodies, for its OpenAPI description.

The status and metadata answers are protocol buffer messages printed by json_format
with the options ``rest_api`` uses (proto field names, fields without presence always
printed), so their schemas are read from the messages' own descriptors: when
tensorflow-serving-api changes a message, the description follows, instead of a copy
of its fields going stale. The tensors, the live monitor's figures and the error body
are this server's own JSON, described from the modules that write them.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from dann_client.contract import INPUT_SHAPE, NUM_CLASSES, PIXEL_BATCH
from dann_serve.drift import estimate

Schema = dict[str, Any]
REF = "#/components/schemas/"

# proto3's JSON mapping: 64-bit integers are strings, floats may be "NaN" or infinite.
_INT64 = {"type": "string", "pattern": "^-?[0-9]+$"}
_FLOAT = {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}
_BYTES = {"type": "string", "contentEncoding": "base64"}
# By the field's C++ type, which groups the wire's many integer encodings.
_SCALARS: dict[int, Schema] = {
    FieldDescriptor.CPPTYPE_DOUBLE: _FLOAT,
    FieldDescriptor.CPPTYPE_FLOAT: _FLOAT,
    FieldDescriptor.CPPTYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.CPPTYPE_STRING: {"type": "string"},
    FieldDescriptor.CPPTYPE_INT32: {"type": "integer"},
    FieldDescriptor.CPPTYPE_UINT32: {"type": "integer", "minimum": 0},
    FieldDescriptor.CPPTYPE_INT64: _INT64,
    FieldDescriptor.CPPTYPE_UINT64: _INT64,
}
# Well-known types json_format prints as a plain value rather than as a message.
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Int64Value": _INT64,
    "google.protobuf.Any": {"type": "object", "required": ["@type"]},
}


def ref(name: str) -> Schema:
    return {"$ref": REF + name}


class ProtoSchemas:
    """The schema of each message reached from the ones asked for, under its full name
    (``tensorflow.TensorInfo``), made once each: some messages contain themselves."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def message(self, descriptor: Descriptor) -> Schema:
        """A reference to the message's schema (made now if new)."""
        name = descriptor.full_name
        if name in _WELL_KNOWN:
            return _WELL_KNOWN[name]
        if name not in self.schemas:
            self.schemas[name] = {}  # claimed before its fields, which may lead back to it
            self.schemas[name] = self._object(descriptor)
        return ref(name)

    def _object(self, descriptor: Descriptor) -> Schema:
        # A field with presence (a message, a oneof member) is printed only when set.
        required = [field.name for field in descriptor.fields if not field.has_presence]
        return {
            "type": "object",
            "properties": {field.name: self._field(field) for field in descriptor.fields},
            "required": required,
            "additionalProperties": False,
        }

    def _field(self, field: FieldDescriptor) -> Schema:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            return {"type": "object", "additionalProperties": self._value(entry.fields[1])}
        value = self._value(field)
        return {"type": "array", "items": value} if field.is_repeated else value

    def _value(self, field: FieldDescriptor) -> Schema:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message(field.message_type)
        if field.type == FieldDescriptor.TYPE_ENUM:
            return {"enum": [value.name for value in field.enum_type.values]}
        if field.type == FieldDescriptor.TYPE_BYTES:
            return _BYTES
        return _SCALARS[field.cpp_type]


def proto_schemas() -> dict[str, Schema]:
    """The status and metadata answers and every message they hold. The metadata's
    ``Any`` values are printed without their ``@type`` (rest_api), and the one field
    this server answers is the signature map, so its schema says just that."""
    protos = ProtoSchemas()
    protos.message(get_model_status_pb2.GetModelStatusResponse.DESCRIPTOR)
    metadata = get_model_metadata_pb2.GetModelMetadataResponse.DESCRIPTOR
    protos.message(metadata)
    signature_map = protos.message(get_model_metadata_pb2.SignatureDefMap.DESCRIPTOR)
    protos.schemas[metadata.full_name]["properties"]["metadata"] = {
        "type": "object",
        "properties": {"signature_def": signature_map},
        "required": ["signature_def"],
        "additionalProperties": False,
    }
    return protos.schemas


# -- this server's JSON ---------------------------------------------------------------------


def _nested(element: Schema, depth: int) -> Schema:
    """A JSON value that is ``element`` or a list of such values, ``depth`` lists deep
    at most."""
    schema = element
    for _ in range(depth):
        schema = {"anyOf": [element, {"type": "array", "items": schema}]}
    return schema


def tensor_schemas() -> dict[str, Schema]:
    """Tensors as TensorFlow Serving's REST API writes them: nested lists of numbers or
    strings, bytes as ``{"b64": ...}``; a whole batch of images is the deepest."""
    depth = len(PIXEL_BATCH)
    return {
        "Base64": {
            "type": "object",
            "description": "A string tensor's bytes (an encoded image file), in base64.",
            "properties": {"b64": {"type": "string", "contentEncoding": "base64"}},
            "required": ["b64"],
            "additionalProperties": False,
        },
        "TensorElement": {
            "anyOf": [{"type": "number"}, {"type": "string"}, ref("Base64")],
        },
        "Tensor": _nested(ref("TensorElement"), depth),
        "NamedTensors": {"type": "object", "additionalProperties": ref("Tensor")},
    }


def predict_schemas(example: str) -> dict[str, Schema]:
    """The body of ``:predict`` and its answer, in the row and the columnar format;
    ``example``: the base64 of a PNG file, one instance of ``predict_image``."""
    return {
        "PredictRequest": {
            "type": "object",
            "description": (
                "Exactly one of `instances` (row format: one item per image, or an object"
                " of named inputs per image) and `inputs` (columnar: the batch as one"
                " tensor, or an object of named tensors). Without `signature_name`,"
                " `serving_default`. The shapes and dtypes each signature takes are in"
                " the model's metadata."
            ),
            "properties": {
                "signature_name": {"type": "string"},
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"anyOf": [ref("Tensor"), ref("NamedTensors")]},
                },
                "inputs": {"anyOf": [ref("Tensor"), ref("NamedTensors")]},
            },
            "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
            "examples": [
                {"signature_name": "predict_image", "instances": [{"b64": example}]},
                {"signature_name": "predict_image", "inputs": [{"b64": example}]},
            ],
        },
        "PredictResponse": {
            "type": "object",
            "description": (
                "`predictions` answers the row format (a tensor for a signature of one"
                " output, else an object of outputs per image), `outputs` the columnar"
                " one (a tensor, or an object of named tensors)."
            ),
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": {"anyOf": [ref("Tensor"), ref("NamedTensors")]},
                },
                "outputs": {"anyOf": [ref("Tensor"), ref("NamedTensors")]},
            },
            "oneOf": [{"required": ["predictions"]}, {"required": ["outputs"]}],
            "additionalProperties": False,
        },
    }


_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}


def monitor_schemas() -> dict[str, Schema]:
    """The live monitor's figures (``drift.window`` and ``live_monitor``): one version's,
    and a model's (its served versions, newest first)."""
    maybe = {"anyOf": [_PROBABILITY, {"type": "null"}]}
    drift = {
        "type": "object",
        "description": "`tests` and `ks_statistics` only with a reference.",
        "properties": {
            "p_value": maybe,
            "shifted": {"type": "boolean"},
            "tests": {"type": "integer", "minimum": 0},
            "ks_statistics": {"type": "array", "items": _PROBABILITY},
        },
        "required": ["p_value", "shifted"],
        "additionalProperties": False,
    }
    count = {"type": "integer", "minimum": 0}
    figures = {
        "model": {"type": "string"},
        "version": count,
        "images": count,
        "mean_confidence": maybe,
        "class_shares": {
            "type": "array",
            "items": _PROBABILITY,
            "minItems": NUM_CLASSES,
            "maxItems": NUM_CLASSES,
        },
        "estimated_accuracy": maybe,
        "estimate_reliable": {"type": "boolean"},
        "drift": drift,
        "unreliable_because": {"type": "array", "items": {"enum": list(estimate.REASONS)}},
        "agreement": maybe,
        "window": {"type": "integer", "minimum": 1},
        "reference": {"type": "boolean"},
        "dropped": count,
    }
    return {
        "VersionMonitor": {
            "type": "object",
            "properties": figures,
            "required": list(figures),
            "additionalProperties": False,
        },
        "ModelMonitor": {
            "type": "object",
            "properties": {
                "model": {"type": "string"},
                "versions": {"type": "array", "items": ref("VersionMonitor")},
            },
            "required": ["model", "versions"],
            "additionalProperties": False,
        },
    }


ERROR: Schema = {
    "type": "object",
    "description": "Why the request was refused, in one line.",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
    "additionalProperties": False,
}


def page_schemas() -> dict[str, Schema]:
    """``GET /v1/models``'s list and ``POST /ui/model-input``'s pixels."""
    version = {
        "type": "object",
        "required": ["version", "state"],
        "properties": {
            "version": {"type": "integer", "minimum": 0},
            "state": {"type": "string"},
            "error": {"type": "string"},
        },
    }
    model = {
        "type": "object",
        "required": ["name", "versions", "labels"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": version},
            "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    }
    side, channels = INPUT_SHAPE[0], INPUT_SHAPE[-1]
    level: Schema = {"type": "integer", "minimum": 0, "maximum": 255}
    for length in (channels, side, side):  # a pixel's channels, a row's pixels, the rows
        level = {"type": "array", "items": level, "minItems": length, "maxItems": length}
    image = level
    return {
        "ModelList": {
            "type": "object",
            "required": ["models"],
            "properties": {"models": {"type": "array", "items": model}},
        },
        "ModelInput": {
            "type": "object",
            "required": ["pixels"],
            "properties": {
                "pixels": {
                    **image,
                    "description": "[32][32][3] uint8, as dann-client preprocess shows it",
                }
            },
        },
    }

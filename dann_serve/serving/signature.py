"""One signature of a loaded SavedModel: its input checks and its call.

The checks read the SignatureDef stored in ``saved_model.pb`` (the same one
GetModelMetadata returns), so a request is judged against exactly what the model
declares, and a bad one is refused with INVALID_ARGUMENT before TensorFlow sees it.
A string (DT_STRING) input holds encoded images, whatever the signature is called
(``predict_image`` in this project's exports): their headers are checked against the
bounds before the graph decodes them (:mod:`~dann_serve.serving.images`), and when the
decoder fails on one, the answer names its index in the batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from dann_serve.serving.images import check_images
from dann_serve.serving.limits import Limits
from dann_serve.serving.loader import MetaGraphModel
from dann_serve.serving.status import ServingError, from_code_number, invalid
from dann_serve.serving.tensors import numpy_dtype, shape_text, to_numpy, type_name


class ServedSignature:
    """A SignatureDef and the loaded MetaGraph that computes it."""

    def __init__(
        self, key: str, definition: meta_graph_pb2.SignatureDef, model: MetaGraphModel
    ) -> None:
        self.key = key
        self.definition = definition
        self.model = model
        self.input_names = sorted(definition.inputs)
        self.output_names = sorted(definition.outputs)
        self._shapes = {
            name: (
                None
                if info.tensor_shape.unknown_rank
                else tuple(dim.size for dim in info.tensor_shape.dim)
            )
            for name, info in definition.inputs.items()
        }
        # Encoded images: the string inputs, recognised by their dtype (the name of a
        # signature is only a name: a renamed copy must be checked just the same).
        self.image_inputs = frozenset(
            name for name, info in definition.inputs.items() if info.dtype == types_pb2.DT_STRING
        )

    def input_dtype(self, name: str) -> np.dtype:
        return numpy_dtype(self.definition.inputs[name].dtype)

    def check_input_names(self, names: Iterable[str]) -> None:
        """INVALID_ARGUMENT naming the extra and the missing inputs, as TF Serving does."""
        sent, wanted = set(names), set(self.input_names)
        if sent != wanted:
            raise invalid(
                f"input size does not match signature: {len(sent)}!={len(wanted)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - wanted))}}}. "
                f"Missing but required: {{{','.join(sorted(wanted - sent))}}}."
            )

    def check_input_dtype(self, name: str, dtype: int) -> None:
        """INVALID_ARGUMENT when a wire tensor's DataType is not the signature's."""
        want = self.definition.inputs[name].dtype
        if dtype != want:
            position = self.input_names.index(name)
            raise invalid(
                f"Expects arg[{position}] to be {type_name(want)} but {type_name(dtype)} is "
                f"provided (input {name})"
            )

    def check_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """INVALID_ARGUMENT when the rank or a fixed dimension differs from the signature."""
        want = self._shapes[name]
        if want is None:
            return
        if len(shape) != len(want) or any(
            w >= 0 and w != got for w, got in zip(want, shape, strict=True)
        ):
            raise invalid(
                f"input {name} has shape {shape_text(shape)} but the signature expects "
                f"{shape_text(want)}"
            )

    def check_input_values(self, name: str, array: np.ndarray, limits: Limits) -> None:
        """What only the values show: the size each encoded image declares, against
        the decoded-tensor bound (INVALID_ARGUMENT naming the image)."""
        if name in self.image_inputs:
            check_images(name, array.reshape(-1), limits)

    def read_input(self, name: str, proto: tensor_pb2.TensorProto, limits: Limits) -> np.ndarray:
        """A wire tensor whose dtype and declared shape have been checked, decoded
        within ``limits`` and its values checked (:meth:`check_input_values`)."""
        array = to_numpy(proto, name, limits.max_tensor_bytes)
        self.check_input_values(name, array, limits)
        return array

    def check_output_filter(self, output_filter: Iterable[str]) -> list[str]:
        """The outputs to return: all of them, or the requested ones if they exist."""
        wanted = list(output_filter)
        if not wanted:
            return self.output_names
        unknown = sorted(set(wanted) - set(self.output_names))
        if unknown:
            raise invalid(f"output tensor alias not found in signature: {', '.join(unknown)}")
        return sorted(set(wanted))

    def run(self, inputs: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """The signature's outputs for checked inputs; TensorFlow errors keep their code."""
        if inputs and all(array.ndim and not len(array) for array in inputs.values()):
            empty = self._empty_outputs(outputs)
            if empty is not None:
                return empty
        try:
            return self.model.run(self.key, inputs, outputs)
        except tf.errors.OpError as error:
            failure = from_code_number(error.error_code, _one_line(error))
        # With one image input the failing image can be named; with more, which input
        # holds it is unknown, and the decoder's words stand alone.
        if failure.code == grpc.StatusCode.INVALID_ARGUMENT and len(self.image_inputs) == 1:
            failure = self._name_the_image(inputs, outputs, failure)
        raise failure

    def _name_the_image(
        self, inputs: Mapping[str, np.ndarray], outputs: list[str], failure: ServingError
    ) -> ServingError:
        """The decoder's error, prefixed with the index of the first image it fails on.

        Images are decoded one by one, so the first failing one is found by halving
        the batch: about log2(N) runs of at most half of it each, paid only by a
        request that fails anyway.
        """
        (name,) = self.image_inputs
        start, stop = 0, len(inputs[name])  # [start, stop) holds a failing image

        def fails(begin: int, end: int) -> ServingError | None:
            try:
                self.model.run(self.key, {k: v[begin:end] for k, v in inputs.items()}, outputs)
            except tf.errors.OpError as error:
                return from_code_number(error.error_code, _one_line(error))
            return None

        while stop - start > 1:
            middle = (start + stop) // 2
            if fails(start, middle):
                stop = middle
            else:
                start = middle
        if stop - start == 1 and len(inputs[name]) > 1:
            failure = fails(start, stop) or failure  # the message of that image alone
        # "Graph execution error: Invalid PNG data, size 60 [[{{node .../DecodePng}}]]":
        # the decoder's words are the middle.
        reason = re.sub(r"\s*\[\[.*?\]\]", "", failure.message)
        reason = reason.removeprefix("Graph execution error:").strip()
        return ServingError(failure.code, f"input {name}[{start}]: cannot decode it: {reason}")

    def _empty_outputs(self, outputs: list[str]) -> dict[str, np.ndarray] | None:
        """The answer to a batch of zero: empty outputs of the declared dtypes and shapes.

        TensorFlow's oneDNN kernels (on by default on x86) fail on an empty batch
        ("input depth must be evenly divisible by filter depth") where the model itself
        has nothing to compute, so the graph is not run. None when an output's shape is
        not ``[-1, fixed...]`` and its empty form is therefore unknown.
        """
        empty = {}
        for name in outputs:
            info = self.definition.outputs[name]
            sizes = [dim.size for dim in info.tensor_shape.dim]
            if info.tensor_shape.unknown_rank or not sizes or sizes[0] != -1:
                return None
            if any(size < 0 for size in sizes[1:]):
                return None
            try:
                dtype = numpy_dtype(info.dtype)
            except ServingError:
                return None
            empty[name] = np.zeros((0, *sizes[1:]), dtype=dtype)
        return empty


def _one_line(error: tf.errors.OpError) -> str:
    """TensorFlow's message on one line: it spans lines (node, stack note), the wire
    wants one."""
    return " ".join(line.strip() for line in error.message.splitlines() if line.strip())

"""The serving signatures: a trained DANN as the SavedModel TensorFlow Serving loads.

Step one of the export: :class:`ServingModule` wraps the network in the inference
functions of the contract's signature table (``SIGNATURE_TABLE`` in
:mod:`dann_client.contract`), one method per row, named as the row: ``predict_label``
and ``classify_domain`` on float32 pixels / 255, and ``predict_label``'s twins, the same
answers from uint8 pixels (``predict_label_uint8``) and from encoded image files
(``predict_image``, decoded in the graph by :mod:`~dann_serve.export.image_input`).
Each method's input spec is its row's; :func:`save_savedmodel` writes every row, with
its aliases (``serving_default``); :func:`example_inputs` gives each signature's input
for the same pixels, which the warm-up records and the parity checks send.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from dann_client.contract import (
    CLASSIFY_DOMAIN,
    FLOAT_PIXELS,
    INPUT_NAME,
    PNG_FILES,
    PREDICT_LABEL,
    PROBABILITIES_OUTPUT,
    SIGNATURE_ROWS,
    SIGNATURE_TABLE,
    UINT8_PIXELS,
    ServingSignature,
)
from dann_client.preprocessing import encode_png, to_model_input
from dann_serve.data.pipeline import to_unit_range
from dann_serve.export.image_input import decode_images
from dann_serve.model.networks import DANN


def input_spec(row: ServingSignature) -> tf.TensorSpec:
    """The row's one input as a ``tf.TensorSpec``, named as the contract names it."""
    return tf.TensorSpec(list(row.shape), tf.as_dtype(row.dtype), name=INPUT_NAME)


def signature_function(method: Callable) -> tf.types.experimental.GenericFunction:
    """``method`` as the ``tf.function`` of the signature row it is named after, its
    input spec read from that row, so that a signature's input is written once."""
    row = SIGNATURE_ROWS.get(method.__name__)
    if row is None:
        raise LookupError(
            f"ServingModule.{method.__name__} has no row in dann_client.contract.SIGNATURE_TABLE"
        )
    # Traced as written (as the training step is): the decoding branches per image with
    # tf.cond and tf.map_fn, never a Python `if` on a tensor, and AutoGraph's rewrite of it
    # cost a tenth of an export.
    return tf.function(method, input_signature=[input_spec(row)], autograph=False)


class ServingModule(tf.Module):
    """The inference functions of a trained DANN, as served.

    Each signature runs only the heads it needs, in inference mode; the gradient
    reversal layer is not on any path, so nothing training-only is exported. Each
    method decorated with :func:`signature_function` is the row of its name in the
    signature table, and every row must have one (:func:`save_savedmodel` saves them).
    """

    def __init__(self, model: DANN) -> None:
        super().__init__()
        self.model = model
        # Keras 3 keeps each tf.Variable inside a keras.Variable. Reached only through
        # those, the variables reach the object graph but not the MetaGraph's saver,
        # and TensorFlow Serving (which restores through the saver) answers every
        # request with "Could not find variable". Tracking the tf.Variables themselves
        # puts them in both; the export checks it (metagraph_parity).
        self.tf_variables = [weight.value for weight in model.weights]

    def _answer(self, head, images: tf.Tensor, signature: str) -> dict[str, tf.Tensor]:
        features = self.model.features(images, training=False)
        probabilities = tf.nn.softmax(head(features, training=False))
        return {
            PROBABILITIES_OUTPUT: probabilities,
            SIGNATURE_ROWS[signature].answer_output: tf.argmax(
                probabilities, axis=-1, output_type=tf.int64
            ),
        }

    @signature_function
    def predict_label(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._answer(self.model.label_head, images, PREDICT_LABEL)

    @signature_function
    def classify_domain(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._answer(self.model.domain_head, images, CLASSIFY_DOMAIN)

    @signature_function
    def predict_label_uint8(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """``predict_label`` on ``images / 255``, divided in float32 as the client does."""
        return self.predict_label(to_unit_range(images))

    @signature_function
    def predict_image(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """``predict_label`` on image files, decoded and laid out in the graph."""
        return self.predict_label_uint8(decode_images(images))


def save_savedmodel(module: ServingModule, path: Path) -> None:
    """The SavedModel of ``module`` at ``path``: every signature of the table, each also
    under its aliases (``serving_default`` for ``predict_label``)."""
    signatures = {}
    for row in SIGNATURE_TABLE:
        function = getattr(module, row.name)
        signatures.update({name: function for name in (row.name, *row.aliases)})
    tf.saved_model.save(module, str(path), signatures=signatures)


def png_files(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 32, 32, 3]`` as an object array of lossless PNG files, encoded as the
    client encodes them for REST, which ``predict_image`` decodes back to exactly these
    pixels."""
    files = np.empty(len(pixels), dtype=object)
    for index, image in enumerate(pixels):
        files[index] = encode_png(image)
    return files


# How each kind of example input is made from uint8 pixels [N, 32, 32, 3].
EXAMPLE_MAKERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    FLOAT_PIXELS: to_model_input,
    UINT8_PIXELS: lambda pixels: pixels,
    PNG_FILES: png_files,
}


def example_inputs(signature: str, pixels: np.ndarray) -> np.ndarray:
    """``signature``'s input for uint8 pixels ``[N, 32, 32, 3]``: the same images as
    every other signature is given, in the form its row says it takes."""
    return EXAMPLE_MAKERS[SIGNATURE_ROWS[signature].example](pixels)


def signatures_report() -> dict:
    """Each signature's input and outputs, and whose answers it gives, as the export's
    report lists them; each alias names the signature it stands for."""
    report: dict = {
        row.name: {
            "inputs": [INPUT_NAME],
            "input": row.input_text,
            "outputs": list(row.outputs),
            "answers_as": row.answers_as,
        }
        for row in SIGNATURE_TABLE
    }
    for row in SIGNATURE_TABLE:
        report.update(dict.fromkeys(row.aliases, row.name))
    return report

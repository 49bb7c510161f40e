"""The serving signatures: a trained DANN as the SavedModel TensorFlow Serving loads.

Step one of the export: :class:`ServingModule` wraps the network in the inference
functions of the contract (:mod:`dann_client.contract`): ``predict_label`` and
``classify_domain`` on float32 pixels / 255, and ``predict_label``'s twins, the same
answers from uint8 pixels (``predict_label_uint8``) and from encoded image files
(``predict_image``, decoded in the graph by :mod:`~dann_serve.export.image_input`).
:func:`save_savedmodel` writes them all, with ``serving_default`` as ``predict_label``;
:func:`example_inputs` gives each signature's input for the same pixels, which the
warm-up records and the parity checks send.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from dann_client.contract import (
    ANSWER_OUTPUT,
    CLASSIFY_DOMAIN,
    EXPORTED_SIGNATURES,
    INPUT_NAME,
    INPUT_SHAPE,
    PREDICT_IMAGE,
    PREDICT_LABEL,
    PREDICT_LABEL_UINT8,
    PROBABILITIES_OUTPUT,
    SERVING_DEFAULT,
)
from dann_client.preprocessing import encode_png, to_model_input
from dann_serve.data.pipeline import to_unit_range
from dann_serve.export.image_input import decode_images
from dann_serve.model.networks import DANN

IMAGES_SPEC = tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name=INPUT_NAME)
PIXELS_SPEC = tf.TensorSpec([None, *INPUT_SHAPE], tf.uint8, name=INPUT_NAME)
FILES_SPEC = tf.TensorSpec([None], tf.string, name=INPUT_NAME)

# Each signature's input, as the report lists it.
INPUTS = {
    PREDICT_LABEL: "float32 [-1, 32, 32, 3], pixels / 255",
    CLASSIFY_DOMAIN: "float32 [-1, 32, 32, 3], pixels / 255",
    PREDICT_LABEL_UINT8: "uint8 [-1, 32, 32, 3], pixels",
    PREDICT_IMAGE: "string [-1], encoded PNG, JPEG, GIF or BMP files",
}
# The signature whose answers each one gives.
ANSWERS_AS = {
    PREDICT_LABEL: PREDICT_LABEL,
    CLASSIFY_DOMAIN: CLASSIFY_DOMAIN,
    PREDICT_LABEL_UINT8: PREDICT_LABEL,
    PREDICT_IMAGE: PREDICT_LABEL,
}


class ServingModule(tf.Module):
    """The inference functions of a trained DANN, as served.

    Each signature runs only the heads it needs, in inference mode; the gradient
    reversal layer is not on any path, so nothing training-only is exported.
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

    def _answer(self, head, images: tf.Tensor, decision: str) -> dict[str, tf.Tensor]:
        features = self.model.features(images, training=False)
        probabilities = tf.nn.softmax(head(features, training=False))
        return {
            PROBABILITIES_OUTPUT: probabilities,
            decision: tf.argmax(probabilities, axis=-1, output_type=tf.int64),
        }

    @tf.function(input_signature=[IMAGES_SPEC])
    def predict_label(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._answer(self.model.label_head, images, ANSWER_OUTPUT[PREDICT_LABEL])

    @tf.function(input_signature=[IMAGES_SPEC])
    def classify_domain(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._answer(self.model.domain_head, images, ANSWER_OUTPUT[CLASSIFY_DOMAIN])

    @tf.function(input_signature=[PIXELS_SPEC])
    def predict_label_uint8(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """``predict_label`` on ``images / 255``, divided in float32 as the client does."""
        return self.predict_label(to_unit_range(images))

    @tf.function(input_signature=[FILES_SPEC])
    def predict_image(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """``predict_label`` on image files, decoded and laid out in the graph."""
        return self.predict_label_uint8(decode_images(images))


def save_savedmodel(module: ServingModule, path: Path) -> None:
    """The SavedModel of ``module`` at ``path``: every signature, and the default one."""
    signatures = {signature: getattr(module, signature) for signature in EXPORTED_SIGNATURES}
    tf.saved_model.save(
        module, str(path), signatures={**signatures, SERVING_DEFAULT: module.predict_label}
    )


def png_files(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 32, 32, 3]`` as an object array of lossless PNG files, encoded as the
    client encodes them for REST, which ``predict_image`` decodes back to exactly these
    pixels."""
    files = np.empty(len(pixels), dtype=object)
    for index, image in enumerate(pixels):
        files[index] = encode_png(image)
    return files


def example_inputs(signature: str, pixels: np.ndarray) -> np.ndarray:
    """``signature``'s input for uint8 pixels ``[N, 32, 32, 3]``: the same images as
    every other signature is given, in the form this one takes."""
    if signature == PREDICT_LABEL_UINT8:
        return pixels
    if signature == PREDICT_IMAGE:
        return png_files(pixels)
    return to_model_input(pixels)


def signatures_report() -> dict:
    """Each signature's input and outputs, and whose answers it gives, as the export's
    report lists them."""
    return {
        **{
            signature: {
                "inputs": [INPUT_NAME],
                "input": INPUTS[signature],
                "outputs": [PROBABILITIES_OUTPUT, ANSWER_OUTPUT[ANSWERS_AS[signature]]],
                "answers_as": ANSWERS_AS[signature],
            }
            for signature in EXPORTED_SIGNATURES
        },
        SERVING_DEFAULT: PREDICT_LABEL,
    }

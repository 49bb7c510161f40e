"""The serving signatures: a trained DANN as the SavedModel TensorFlow Serving loads.

Step one of the export: :class:`ServingModule` wraps the network in the two
inference functions of the contract (:mod:`dann_client.contract`), and
:func:`save_savedmodel` writes them, with ``serving_default`` as ``predict_label``.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from dann_client.contract import (
    ANSWER_OUTPUT,
    CLASSIFY_DOMAIN,
    INPUT_NAME,
    INPUT_SHAPE,
    PREDICT_LABEL,
    PROBABILITIES_OUTPUT,
    SERVING_DEFAULT,
    SIGNATURES,
)
from dann_serve.model.networks import DANN

IMAGES_SPEC = tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name=INPUT_NAME)


class ServingModule(tf.Module):
    """The two inference functions of a trained DANN, as served.

    Each signature runs only the heads it needs, in inference mode; the gradient
    reversal layer is not on either path, so nothing training-only is exported.
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


def save_savedmodel(module: ServingModule, path: Path) -> None:
    """The SavedModel of ``module`` at ``path``: both signatures, and the default one."""
    signatures = {signature: getattr(module, signature) for signature in SIGNATURES}
    tf.saved_model.save(
        module, str(path), signatures={**signatures, SERVING_DEFAULT: module.predict_label}
    )


def signatures_report() -> dict:
    """Each signature's inputs and outputs, as the export's report lists them."""
    return {
        **{
            signature: {"inputs": [INPUT_NAME], "outputs": [PROBABILITIES_OUTPUT, decision]}
            for signature, decision in ANSWER_OUTPUT.items()
        },
        SERVING_DEFAULT: PREDICT_LABEL,
    }

"""A SavedModel loaded the way TensorFlow Serving loads it.

TensorFlow Serving never reads the object graph that ``tf.saved_model.load`` uses:
it imports the MetaGraph tagged ``serve``, runs the graph's saver to restore the
variables, and feeds and fetches the tensor names each SignatureDef lists. A
SavedModel can answer correctly through ``tf.saved_model.load`` and still fail every
request in TensorFlow Serving ("Could not find variable ..."), so the export checks
the model through this path too, before a version is published.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf


class MetaGraphModel:
    """The ``serve`` MetaGraph of a SavedModel in a graph and a session of its own."""

    def __init__(self, path: Path) -> None:
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel(logging.ERROR)  # the TF1 loader announces its own deprecation
        try:
            with self._graph.as_default():
                meta_graph = tf.compat.v1.saved_model.load(
                    self._session, [tf.saved_model.SERVING], str(path)
                )
        except BaseException:
            self._session.close()
            raise
        finally:
            logger.setLevel(level)
        self.signature_defs = dict(meta_graph.signature_def)

    def run(
        self, signature: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Feed ``inputs`` by their SignatureDef names; fetch ``outputs`` likewise."""
        definition = self.signature_defs[signature]
        feeds = {definition.inputs[name].name: value for name, value in inputs.items()}
        fetches = [definition.outputs[name].name for name in outputs]
        return dict(zip(outputs, self._session.run(fetches, feeds), strict=True))

    def close(self) -> None:
        self._session.close()

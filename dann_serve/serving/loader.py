"""A SavedModel loaded the way TensorFlow Serving loads it.

TensorFlow Serving never reads the object graph that ``tf.saved_model.load`` uses:
it imports the MetaGraph tagged ``serve``, runs the graph's saver to restore the
variables, and feeds and fetches the tensor names each SignatureDef lists. A
SavedModel can answer correctly through ``tf.saved_model.load`` and still fail every
request in TensorFlow Serving ("Could not find variable ..."). So both the export's
last check and ``dann-serve serve`` load models this way: what the local server
answers, TensorFlow Serving can answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

# The PredictionLog records TensorFlow Serving replays into a version after loading
# it, before serving it (its SavedModel warm-up), relative to the version directory.
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


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
        self._callables: dict[tuple, Callable] = {}
        self._lock = threading.Lock()

    def run(
        self, signature: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Feed ``inputs`` by their SignatureDef names; fetch ``outputs`` likewise.

        Each combination of signature, inputs and outputs becomes a session callable
        once (``Session.make_callable``), which spares every later call the work of
        resolving tensor names and pruning the graph.
        """
        names = sorted(inputs)
        key = (signature, tuple(names), tuple(outputs))
        call = self._callables.get(key)
        if call is None:
            definition = self.signature_defs[signature]
            with self._lock:
                call = self._callables.get(key) or self._session.make_callable(
                    [definition.outputs[name].name for name in outputs],
                    feed_list=[definition.inputs[name].name for name in names],
                )
                self._callables[key] = call
        values = call(*(inputs[name] for name in names))
        return dict(zip(outputs, values, strict=True))

    def close(self) -> None:
        """Free the session's variables and the graph; the model answers no more."""
        with self._lock:
            self._callables.clear()
            self._session.close()

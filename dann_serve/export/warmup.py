"""The warm-up records: requests TensorFlow Serving replays into a version before serving it.

Without them the first real requests pay for graph optimisation and memory
allocation; with them a new version answers its first client as fast as its
thousandth. ``dann-serve serve`` replays the same file. Every signature of the
contract's table is warmed up, in the input its row says it takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from dann_client.contract import EXPORTED_SIGNATURES, INPUT_NAME
from dann_serve.export.signatures import example_inputs

WARMUP_BATCH = 32  # beside a batch of 1, per signature


def write_warmup(path: Path, model_name: str, pixels: np.ndarray) -> int:
    """TFRecord of PredictionLog records, batch 1 and a full batch, per signature, each
    of uint8 ``pixels`` in the form the signature takes (float32, uint8, PNG files)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature in EXPORTED_SIGNATURES:
            inputs = example_inputs(signature, pixels[:WARMUP_BATCH])
            for batch in (inputs[:1], inputs):
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature),
                    inputs={INPUT_NAME: tf.make_tensor_proto(batch)},
                )
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())
                count += 1
    return count

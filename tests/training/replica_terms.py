"""Each loss term of ``dann_serve.training.losses``, and its gradient, on one device and as
the parts of 2 replicas (MirroredStrategy over 2 logical CPU devices), as JSON on stdout.

A script, run by tests/training/test_distribute.py in its own process: logical devices are fixed
before TensorFlow starts. The terms are exact functions of their logits, so the summed
parts must equal the whole to float32 rounding, which no trajectory can blur.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

ROWS = 16  # of the global batch; each replica takes 8


def terms(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor, replicas) -> dict:
    from dann_serve.training.losses import (
        domain_loss,
        information_loss,
        label_loss,
        mean_prediction,
    )

    domains = labels % 2
    return {
        "label": label_loss(labels, logits, replicas),
        "domain": domain_loss(domains, logits[:, :2], None, replicas),
        "weighted domain": domain_loss(domains, logits[:, :2], weights, replicas),
        "information": information_loss(logits, replicas),
        "mean prediction": tf.reduce_sum(mean_prediction(logits, replicas) ** 2) / replicas.count,
    }


def with_gradients(logits, labels, weights, replicas) -> dict:
    """Each term and its gradient with respect to the logits given."""
    out = {}
    for name in terms(logits, labels, weights, replicas):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = terms(logits, labels, weights, replicas)[name]
        out[name] = (value, tape.gradient(value, logits))
    return out


def main() -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from dann_serve.training.losses import Replicas

    rng = np.random.default_rng(0)
    logits = tf.constant(3 * rng.normal(size=(ROWS, 10)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 10, ROWS).astype(np.int64))
    weights = tf.constant(rng.uniform(0.2, 5.0, ROWS).astype(np.float32))
    whole = with_gradients(logits, labels, weights, Replicas(1))

    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices()])

    def replica() -> dict:
        index = tf.distribute.get_replica_context().replica_id_in_sync_group
        rows = tf.range(ROWS // 2) + index * (ROWS // 2)
        parts = [tf.gather(tensor, rows) for tensor in (logits, labels, weights)]
        return with_gradients(*parts, Replicas(2))

    parts = strategy.run(tf.function(replica))
    report = {}
    for name, (value, gradient) in whole.items():
        part_values, part_gradients = parts[name]
        summed = strategy.reduce(tf.distribute.ReduceOp.SUM, part_values, axis=None)
        joined = tf.concat(strategy.experimental_local_results(part_gradients), axis=0)
        report[name] = {
            "one device": float(value),
            "replicas": float(summed),
            "gradient difference": float(tf.reduce_max(tf.abs(joined - gradient))),
            "gradient size": float(tf.reduce_max(tf.abs(gradient))),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""Source images per second of one DANN training step, per architecture.

Beside the real step (tf.data stream -> gather -> forward/backward -> SGD), it times
a bare step of the same network on a constant in-memory batch: the ratio shows how
much the data pipeline and the Python loop cost. Figures are medians over repeats.

    python bench/train_throughput.py [--steps 200] [--repeats 5] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import tensorflow as tf

from dann_serve.datasets import Domain, Split
from dann_serve.training import TrainConfig, Trainer


def synthetic_domain(name: str, count: int, seed: int) -> Domain:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count).astype(np.int64)
    return Domain(name, Split(images, labels), Split(images[:500], labels[:500]))


def time_steps(step, steps: int, repeats: int) -> list[float]:
    for _ in range(10):
        step()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        seconds.append(time.perf_counter() - start)
    return seconds


def bare_step(trainer: Trainer, batch_size: int):
    """The same forward/backward/update on a fixed batch, no data stream."""
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((batch_size, 32, 32, 3), dtype=np.float32))
    labels = tf.constant(rng.integers(0, 10, batch_size // 2).astype(np.int64))
    model, optimizer, half = trainer.model, trainer.optimizer, batch_size // 2
    domains = trainer.domain_labels

    @tf.function
    def step() -> None:
        with tf.GradientTape() as tape:
            label_logits, domain_logits = model(images, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, label_logits[:half])
            ) + tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(domains, domain_logits)
            )
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--arch", nargs="+", default=["mnist", "svhn"])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    source = synthetic_domain("source", 20_000, 1)
    target = synthetic_domain("target", 2_000, 2)
    half = args.batch_size // 2
    results = {}
    for arch in args.arch:
        steps = args.steps if arch == "mnist" else max(args.steps // 8, 10)
        config = TrainConfig(arch=arch, steps=10**6, batch_size=args.batch_size)
        trainer = Trainer(config, source, target)
        ours = statistics.median(
            half * steps / s for s in time_steps(trainer.train_step, steps, args.repeats)
        )
        bare = statistics.median(half * steps / s for s in
                                 time_steps(bare_step(trainer, args.batch_size), steps,
                                            args.repeats))  # fmt: skip
        results[arch] = {"source_images_per_s": ours, "bare_step_source_images_per_s": bare,
                         "ratio_to_bare": ours / bare}  # fmt: skip
        print(
            f"{arch:6s} DANN step: {ours:8.0f} source images/s (median of {args.repeats}); "
            f"bare tf.function step: {bare:8.0f}; ratio {ours / bare:.2f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"batch_size": args.batch_size, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()

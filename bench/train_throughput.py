"""Source images per second of one DANN training step, per architecture, and where a
step's time goes.

Beside the real step (tf.data stream -> gather -> random shifts, on by default ->
forward/backward -> SGD -> weight average), it times a bare step of the same network on
a constant in-memory batch (forward/backward/SGD only), and two parts of that: the
forward pass alone, and forward plus gradients. The CPU time of each (busy time of the
process, which the load of a shared machine does not dilute the way it dilutes wall
time) splits a step into forward, backward, update, and the rest (data stream, shifts,
weight average, metrics, Python). The variants take turns in each repeat, so a change
in load falls on all alike; figures are medians over the repeats. The data are random
pixels: the speed of a step does not depend on them (bench/train_vs_adapt.py times
real training on the embedded pair).

    python bench/train_throughput.py [--steps 200] [--repeats 5] [--batch-size 128]
        [--arch mnist svhn] [--json bench/results/train_throughput.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from dann_serve.data import Domain, Split
from dann_serve.training.loop import TrainConfig, Trainer

from _common import Result, median


def synthetic_domain(name: str, count: int, seed: int) -> Domain:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count).astype(np.int64)
    return Domain(name, Split(images, labels), Split(images[:500], labels[:500]))


def time_steps(steps_of: dict, steps: int, repeats: int) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds for ``steps`` calls of each step function, ``repeats`` times,
    the functions taking turns."""
    for step in steps_of.values():
        for _ in range(10):
            step()
    seconds = {name: {"wall": [], "cpu": []} for name in steps_of}
    for _ in range(repeats):
        for name, step in steps_of.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            seconds[name]["cpu"].append(time.process_time() - cpu)
            seconds[name]["wall"].append(time.perf_counter() - wall)
    return seconds


def bare_steps(trainer: Trainer, batch_size: int) -> dict:
    """The same network on a fixed batch, no data stream: the forward pass alone, forward
    plus gradients, and the bare step (forward/backward/SGD update)."""
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((batch_size, 32, 32, 3), dtype=np.float32))
    labels = tf.constant(rng.integers(0, 10, batch_size // 2).astype(np.int64))
    model, optimizer, half = trainer.model, trainer.optimizer, batch_size // 2
    domains = trainer.domain_labels

    def loss() -> tf.Tensor:
        label_logits, domain_logits = model(images, training=True)
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, label_logits[:half])
        ) + tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(domains, domain_logits))

    def gradients() -> list:
        with tf.GradientTape() as tape:
            value = loss()
        return tape.gradient(value, model.trainable_variables)

    @tf.function
    def step() -> None:
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(gradients(), variables, strict=True))

    return {"bare": step, "forward": tf.function(loss), "forward+backward": tf.function(gradients)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--arch", nargs="+", default=["mnist", "svhn"])
    parser.add_argument(
        "--json", help="where the figures go (default bench/results/train_throughput.json)"
    )
    args = parser.parse_args()
    result = Result("train_throughput", args.json)

    source = synthetic_domain("source", 20_000, 1)
    target = synthetic_domain("target", 2_000, 2)
    half = args.batch_size // 2
    results = {}
    for arch in args.arch:
        steps = args.steps if arch == "mnist" else max(args.steps // 8, 10)
        config = TrainConfig(arch=arch, steps=10**6, batch_size=args.batch_size)
        trainer = Trainer(config, source, target)
        seconds = time_steps(
            {"ours": trainer.train_step, **bare_steps(trainer, args.batch_size)},
            steps,
            args.repeats,
        )
        ours = median(half * steps / s for s in seconds["ours"]["wall"])
        bare = median(half * steps / s for s in seconds["bare"]["wall"])
        cpu_ms = {name: 1000 * median(times["cpu"]) / steps for name, times in seconds.items()}
        parts = {
            "forward": cpu_ms["forward"],
            "backward": cpu_ms["forward+backward"] - cpu_ms["forward"],
            "update": cpu_ms["bare"] - cpu_ms["forward+backward"],
            "data, average, metrics": cpu_ms["ours"] - cpu_ms["bare"],
        }
        results[arch] = {
            "steps": steps,
            "source_images_per_s": ours,
            "bare_step_source_images_per_s": bare,
            "ratio_to_bare": ours / bare,
            "source_images_per_cpu_s": half * 1000 / cpu_ms["ours"],
            "cpu_ms_per_step": cpu_ms,
            "cpu_ms_parts": parts,
            "seconds": seconds,
        }
        print(
            f"{arch:6s} DANN step: {ours:8.0f} source images/s (median of {args.repeats}); "
            f"bare tf.function step: {bare:8.0f}; ratio {ours / bare:.2f}\n"
            f"       CPU ms per step: "
            + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
            + f" = {cpu_ms['ours']:.1f}",
            flush=True,
        )
    result.write(
        {
            "batch_size": args.batch_size,
            "source_per_step": half,
            "repeats": args.repeats,
            "results": results,
        }
    )


if __name__ == "__main__":
    main()

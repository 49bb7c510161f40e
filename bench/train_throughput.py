"""Source images per second of one DANN training step, per architecture and precision,
where a step's time goes, and what a distribution strategy costs.

Three kinds of row, each from variants that take turns in every repeat (so a change in
load falls on all alike; figures are medians over the repeats):

- **the step against the bare step**: the real step (the tf.data stream with its
  prepared batches -> forward/backward -> clipped SGD -> weight average -> metrics)
  beside a bare step of the same network on a constant in-memory batch
  (forward/backward/SGD only), and two parts of that: the forward pass alone, and
  forward plus gradients. The CPU time of each (busy time of the process, which the load
  of a shared machine does not dilute the way it dilutes wall time) splits a step into
  forward, backward, update, and the rest (data, weight average, metrics, Python);
- **precision**: the same step under each ``--precision`` (Keras mixed-precision
  policies), as a ratio to float32;
- **replicas**, without GPUs: the step with no strategy, and under MirroredStrategy over
  1 and over N logical CPU devices (``--cpu-replicas``). On a 2-core machine the devices
  share the same cores, so the row is expected to be flat: it shows the strategy's own
  cost. It runs in a child process, since the CPU is split before TensorFlow starts.

``--distribute mirrored`` runs the first two rows under MirroredStrategy over every
visible GPU (one device, the CPU, on a machine without them), as ``dann-serve train
--distribute mirrored`` would. The data are random pixels: the speed of a step does not
depend on them (bench/train_vs_adapt.py times real training on the embedded pair).

    python -m bench.train_throughput [--steps 200] [--repeats 5] [--batch-size 128]
        [--arch mnist svhn] [--distribute none|mirrored]
        [--precision float32 mixed_bfloat16] [--replicas 1 2]
        [--json bench/results/train_throughput.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import ROOT, Result, argument_parser, bench_module, median

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def synthetic_domain(name: str, count: int, seed: int):
    from dann_serve.data import Domain, Split

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


def bare_steps(trainer, batch_size: int) -> dict:
    """The same network on a fixed batch, no data stream: the forward pass alone, forward
    plus gradients, and the bare step (forward/backward/SGD update)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((batch_size, 32, 32, 3), dtype=np.float32))
    labels = tf.constant(rng.integers(0, 10, batch_size // 2).astype(np.int64))
    model, optimizer, half = trainer.model, trainer.optimizer, batch_size // 2
    domains = tf.constant([0] * half + [1] * half, tf.int64)

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


@functools.cache
def random_pair() -> tuple:
    """The source and target of every Trainer here, made once per process."""
    return synthetic_domain("source", 20_000, 1), synthetic_domain("target", 2_000, 2)


def trainer_of(arch: str, batch_size: int, place=None, **options):
    """A Trainer on random pixels."""
    from dann_serve.config import TrainConfig
    from dann_serve.training.step import Trainer

    # float32 unless asked: the bare step, the replica rows and the FLOP limits are its.
    options.setdefault("precision", "float32")
    config = TrainConfig(arch=arch, steps=10**6, batch_size=batch_size, **options)
    return Trainer(config, *random_pair(), place)


def step_row(arch: str, args: argparse.Namespace) -> dict:
    """The step against the bare step, and each precision against float32."""
    from dann_serve.config import TrainConfig
    from dann_serve.training.distribute import placement

    place = placement(TrainConfig(distribute=args.distribute))
    trainers = {p: trainer_of(arch, args.batch_size, place, precision=p) for p in args.precision}
    bare_of = trainers.get("float32") or trainer_of(arch, args.batch_size)
    steps = args.steps if arch == "mnist" else max(args.steps // 8, 10)
    seconds = time_steps(
        {
            **{p: trainer.train_step for p, trainer in trainers.items()},
            **bare_steps(bare_of, args.batch_size),
        },
        steps,
        args.repeats,
    )
    half = args.batch_size // 2
    speed = {name: median(half * steps / s for s in t["wall"]) for name, t in seconds.items()}
    cpu_ms = {name: 1000 * median(t["cpu"]) / steps for name, t in seconds.items()}
    row = {"steps": steps, "replicas": place.replicas, "seconds": seconds}
    row["precision_source_images_per_s"] = {p: speed[p] for p in trainers}
    if "float32" in trainers:
        row.update(
            source_images_per_s=speed["float32"],
            bare_step_source_images_per_s=speed["bare"],
            ratio_to_bare=speed["float32"] / speed["bare"],
            source_images_per_cpu_s=half * 1000 / cpu_ms["float32"],
            cpu_ms_per_step={"ours": cpu_ms["float32"], **cpu_ms},
            cpu_ms_parts={
                "forward": cpu_ms["forward"],
                "backward": cpu_ms["forward+backward"] - cpu_ms["forward"],
                "update": cpu_ms["bare"] - cpu_ms["forward+backward"],
                "data, average, metrics": cpu_ms["float32"] - cpu_ms["bare"],
            },
        )
        row["precision_speedup"] = {p: speed[p] / speed["float32"] for p in trainers}
    return row


def print_step_row(arch: str, row: dict, repeats: int) -> None:
    if "ratio_to_bare" in row:
        parts = row["cpu_ms_parts"]
        print(
            f"{arch:6s} DANN step: {row['source_images_per_s']:8.0f} source images/s "
            f"(median of {repeats}, {row['replicas']} replica(s)); bare tf.function step: "
            f"{row['bare_step_source_images_per_s']:8.0f}; ratio {row['ratio_to_bare']:.2f}\n"
            "       CPU ms per step: "
            + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
            + f" = {row['cpu_ms_per_step']['ours']:.1f}",
            flush=True,
        )
    for precision, speed in row["precision_source_images_per_s"].items():
        ratio = row.get("precision_speedup", {}).get(precision)
        shown = f" = {ratio:.2f}x float32" if ratio else ""
        print(f"       {precision:15s} {speed:8.0f} source images/s{shown}", flush=True)


def replica_row(args: argparse.Namespace) -> dict:
    """In this process, which nothing has initialised TensorFlow in: the step with no
    strategy and under MirroredStrategy over each count of logical CPU devices."""
    import tensorflow as tf

    from dann_serve.config import TrainConfig
    from dann_serve.training.distribute import Placement, placement

    split = placement(TrainConfig(distribute="mirrored", cpu_replicas=max(args.replicas)))
    places = {"none": Placement()}
    for count in args.replicas:
        devices = list(split.devices[:count])
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        places[f"mirrored x{count}"] = Placement(strategy, devices=tuple(devices))
    trainers = {name: trainer_of("mnist", args.batch_size, p) for name, p in places.items()}
    seconds = time_steps({n: t.train_step for n, t in trainers.items()}, args.steps, args.repeats)
    half = args.batch_size // 2
    speed = {n: median(half * args.steps / s for s in t["wall"]) for n, t in seconds.items()}
    return {
        "steps": args.steps,
        "source_images_per_s": speed,
        "ratio_to_none": {name: value / speed["none"] for name, value in speed.items()},
        "seconds": seconds,
    }


def run_replica_child(args: argparse.Namespace) -> dict | None:
    """The replica row from a child process (None, with a note, on a machine with GPUs:
    logical CPU devices are for machines without them)."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        print("replicas: skipped, this machine has GPUs (--distribute mirrored uses them)")
        return None
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "replicas.json"
        command = [*bench_module("train_throughput"), "--child-replicas", str(out)]
        command += ["--steps", str(args.steps), "--repeats", str(args.repeats)]
        command += ["--batch-size", str(args.batch_size), "--replicas", *map(str, args.replicas)]
        subprocess.run(command, cwd=ROOT, check=True)
        row = json.loads(out.read_text())
    print(
        "mnist  replicas (logical CPU devices), source images/s: "
        + "; ".join(
            f"{name} {speed:.0f} ({row['ratio_to_none'][name]:.2f}x)"
            for name, speed in row["source_images_per_s"].items()
        ),
        flush=True,
    )
    return row


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--arch", nargs="+", default=["mnist", "svhn"])
    parser.add_argument("--distribute", choices=("none", "mirrored"), default="none")
    parser.add_argument(
        "--precision", nargs="+", default=["float32", "mixed_bfloat16"], help="policies to time"
    )
    parser.add_argument(
        "--replicas", type=int, nargs="*", default=[1, 2], help="logical CPU devices (none: skip)"
    )
    parser.add_argument(
        "--json", help="where the figures go (default bench/results/train_throughput.json)"
    )
    parser.add_argument("--child-replicas", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child_replicas:
        args.child_replicas.write_text(json.dumps(replica_row(args)))
        return
    result = Result("train_throughput", args.json)
    print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    replicas = run_replica_child(args) if args.replicas else None
    results = {}
    for arch in args.arch:
        results[arch] = step_row(arch, args)
        print_step_row(arch, results[arch], args.repeats)
    result.write(
        {
            "batch_size": args.batch_size,
            "source_per_step": args.batch_size // 2,
            "repeats": args.repeats,
            "distribute": args.distribute,
            "results": results,
            "replicas": replicas,
        }
    )


if __name__ == "__main__":
    main()

"""How close the measured speeds come to this CPU's limits.

- FLOPs per image of each architecture: multiply-adds counted from the layer shapes
  of ``dann_serve.model.networks`` (Conv2D: out_h * out_w * filters * k_h * k_w * in_channels;
  Dense: inputs * units; 1 multiply-add = 2 FLOPs), cross-checked against the FLOP
  statistics TensorFlow registers for the ops of the concrete forward graph (what
  ``tf.compat.v1.profiler`` adds up).
- The CPU's peak fp32 FLOP/s: cores x clock x FLOPs per cycle, from ``/proc/cpuinfo``
  (see :func:`peak_flops` for the assumptions).
- Achieved FLOP/s: the images/s measured by the other benchmarks (their JSON files in
  ``bench/results/``) times the FLOPs per image; a training step costs about 3x a
  forward pass (forward, gradient w.r.t. activations, gradient w.r.t. weights) over
  source AND target images, so 6x the forward FLOPs per source image.

    python -m bench.limits [--results bench/results] [--json bench/results/limits.json]
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from bench._common import RESULTS, Result, argument_parser, machine, median

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PARTS = ("features", "label_head", "domain_head")
TRAIN_FACTOR = 3  # forward + two backward products per layer
FMA_UNITS = 2  # FMA pipes per core assumed (true of every x86 server core since Haswell/Zen)


def analytic_macs(arch: str) -> dict[str, int]:
    """Multiply-adds per image of each part of the network, from its layer shapes."""
    import keras

    from dann_client.contract import INPUT_SHAPE
    from dann_serve.model.networks import DANN

    model = DANN(arch)
    counts: dict[str, int] = {}
    shape: tuple = (1, *INPUT_SHAPE)
    feature_shape = None
    for part in PARTS:
        if part != "features":
            shape = feature_shape
        total = 0
        for layer in getattr(model, part).layers:
            out = tuple(layer.compute_output_shape(shape))
            if isinstance(layer, keras.layers.Conv2D):
                k_h, k_w = layer.kernel_size
                total += out[1] * out[2] * out[3] * k_h * k_w * shape[-1]
            elif isinstance(layer, keras.layers.Dense):
                total += shape[-1] * layer.units
            shape = out
        counts[part] = total
        if part == "features":
            feature_shape = shape
    return counts


def graph_flops(arch: str) -> dict[str, int]:
    """FLOPs of one image's forward pass (both heads) by TF op type, from the statistics
    TensorFlow registers per op (``tf.compat.v1.profiler`` sums the same numbers)."""
    import tensorflow as tf
    from tensorflow.python.framework import ops

    from dann_client.contract import INPUT_SHAPE
    from dann_serve.model.networks import DANN

    model = DANN(arch)
    spec = tf.TensorSpec((1, *INPUT_SHAPE), tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    graph = forward.get_concrete_function().graph
    by_type: Counter = Counter()
    for op in graph.get_operations():
        try:
            value = ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:  # no statistics registered for this op type
            continue
        by_type[op.type] += int(value or 0)
    return {kind: count for kind, count in by_type.items() if count}


def peak_flops(host: dict) -> dict:
    """Peak fp32 FLOP/s = cores x clock x (FMA units x fp32 lanes per unit x 2).

    - FLOPs per cycle: an FMA is 2 FLOPs; ``FMA_UNITS`` (2) FMA pipes per core; the
      lanes per pipe from the widest SIMD flag (avx512f: 16 fp32, avx2/fma: 8, else 4),
      EXCEPT on AMD family 25 (Zen 4), which executes 512-bit instructions on 256-bit
      pipes (8 fp32 lanes each). So Zen 4: 2 x 8 x 2 = 32 FLOP/cycle; a 2-FMA-unit
      AVX-512 Intel core: 64.
    - clock: ``cpu MHz`` of /proc/cpuinfo (in a VM: the nominal clock it is told;
      boost clocks are higher, which would make the true peak higher and the
      fractions below smaller).
    - cores: the CPUs this process may run on.
    """
    simd = set(host.get("simd", []))
    lanes = 16 if "avx512f" in simd else 8 if {"avx2", "fma"} <= simd else 4
    zen4 = host.get("vendor") == "AuthenticAMD" and str(host.get("cpu_family")) == "25"
    note = ""
    if zen4 and lanes == 16:
        lanes = 8
        note = " (AMD family 25 = Zen 4: AVX-512 runs on 256-bit pipes)"
    per_cycle = FMA_UNITS * lanes * 2
    ghz = (host.get("mhz") or 0.0) / 1000
    cores = host.get("cores") or 1
    return {
        "flop_per_cycle_per_core": per_cycle,
        "ghz": ghz,
        "cores": cores,
        "peak_flops": cores * ghz * 1e9 * per_cycle,
        "derivation": f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle "
        f"({FMA_UNITS} FMA units x {lanes} fp32 lanes x 2 FLOP per FMA){note}",
    }


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """FLOPs per CPU-second of one fp32 ``size`` x ``size`` matmul on ONE thread, median of
    ``repeats``: what this core attains on the friendliest kernel there is, a check on
    the clock and FLOPs-per-cycle assumptions of :func:`peak_flops`. Must run before
    anything else in the process touches TensorFlow (it pins the thread pools)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    a = tf.random.normal((size, size), seed=1)
    b = tf.random.normal((size, size), seed=2)
    product = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
    product().numpy()
    rates = []
    for _ in range(repeats):
        start = time.process_time()
        product().numpy()
        rates.append(2 * size**3 / (time.process_time() - start))
    return median(rates)


class Speed(NamedTuple):
    """One speed another benchmark measured, and the work each image takes."""

    what: str
    arch: str
    images_per_s: float
    flop_per_image: float
    unit: str


SOURCE, SOURCE_CPU, IMAGES = "source img/s", "source img/CPU-s", "img/s"


def _training_speeds(train: dict, flop: Callable[[str], float]) -> list[Speed]:
    speeds = []
    for arch, got in train["results"].items():
        speeds += [
            Speed("training step (synthetic data)", arch, got["source_images_per_s"], 0, SOURCE),
            Speed("bare tf.function step", arch, got["bare_step_source_images_per_s"], 0, SOURCE),
            Speed(
                "training step, per CPU-second (vs one core)",
                arch,
                got["source_images_per_cpu_s"],
                0,
                SOURCE_CPU,
            ),
        ]
    return [speed._replace(flop_per_image=flop(speed.arch)) for speed in speeds]


def _pair_speeds(versus: dict, flop: Callable[[str], float]) -> list[Speed]:
    # float32's figure against float32's peak ("ours" is the default, bfloat16 where
    # the CPU has it); a run of the benchmark from before the split named it "ours".
    contenders = versus["contenders"]
    if (ours := contenders.get("ours-float32", contenders.get("ours"))) is None:
        return []
    median, what = ours["median"], "training, fonts -> digits"
    return [
        Speed(what, "mnist", median["source_images_per_s"], flop("mnist"), SOURCE),
        Speed(
            f"{what}, per CPU-second (vs one core)",
            "mnist",
            median["source_images_per_cpu_s"],
            flop("mnist"),
            SOURCE_CPU,
        ),
    ]


def _inference_speeds(serve: dict, flop_per_image: float) -> list[Speed]:
    speeds = []
    for path in ("in-process", "onnxruntime"):
        got = serve["paths"][path]
        speeds += [
            Speed(f"inference {path}, batch 256", "mnist", got["images_per_s"], 0, IMAGES),
            Speed(f"inference {path}, batch 1 (1/p50)", "mnist", 1000 / got["p50_ms"], 0, IMAGES),
        ]
    return [speed._replace(flop_per_image=flop_per_image) for speed in speeds]


def measured_speeds(flops: dict[str, dict], results: Path) -> list[Speed]:
    """Every speed measured by the other benchmarks whose JSON is present."""

    def load(name: str) -> dict | None:
        path = results / f"{name}.json"
        return json.loads(path.read_text())["figures"] if path.exists() else None

    def training(arch: str) -> float:
        return TRAIN_FACTOR * 2 * flops[arch]["forward_both_heads"]

    speeds = []
    if train := load("train_throughput"):
        speeds += _training_speeds(train, training)
    if versus := load("train_vs_adapt"):
        speeds += _pair_speeds(versus, training)
    if serve := load("serve_latency"):
        speeds += _inference_speeds(serve, flops["mnist"]["predict_label"])
    return speeds


def achieved(flops: dict[str, dict], peak: dict, results: Path) -> list[dict]:
    """Achieved FLOP/s of every measured speed whose JSON is present.

    Rates per CPU-second (busy time of the process, which the load of a shared machine
    does not dilute) are compared with the peak of one core.
    """
    rows = []
    for speed in measured_speeds(flops, results):
        rate = speed.images_per_s * speed.flop_per_image
        cores = 1 if "CPU-s" in speed.unit else peak["cores"]
        ceiling = peak["peak_flops"] / peak["cores"] * cores
        rows.append(
            {
                **speed._asdict(),
                "flops": rate,
                "fraction_of_peak": rate / ceiling if ceiling else None,
                "fraction_of_matmul": rate / (peak["matmul_per_core"] * cores),
            }
        )
    return rows


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where the other benchmarks' JSON files are"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = Result("limits", args.json)
    matmul = matmul_rate()

    flops = {}
    for arch in ("mnist", "svhn"):
        macs = analytic_macs(arch)
        graph = graph_flops(arch)
        # rgb_to_grayscale is a [pixels, 3] x [3, 1] MatMul: 2 x 32 x 32 x 3 FLOPs
        grayscale = 2 * 32 * 32 * 3
        flops[arch] = {
            "macs": macs,
            "forward_both_heads": 2 * sum(macs.values()),
            "predict_label": 2 * (macs["features"] + macs["label_head"]),
            "graph_flops_by_op": graph,
            "graph_conv_matmul": graph.get("Conv2D", 0) + graph.get("MatMul", 0) - grayscale,
            "graph_total": sum(graph.values()),
        }
        check = flops[arch]["graph_conv_matmul"] == flops[arch]["forward_both_heads"]
        flops[arch]["cross_check_equal"] = check
        print(
            f"{arch}: {sum(macs.values()):,} multiply-adds per image ({macs}); "
            f"TF graph conv+matmul {flops[arch]['graph_conv_matmul']:,} FLOPs "
            f"({'equal' if check else 'DIFFERENT'}), all ops {flops[arch]['graph_total']:,}"
        )
    peak = peak_flops(machine())
    peak["matmul_per_core"] = matmul
    peak["implied_ghz"] = matmul / peak["flop_per_cycle_per_core"] / 1e9
    print(
        f"one-thread fp32 matmul: {matmul / 1e9:.0f} GFLOP per CPU-second "
        f"(= {peak['implied_ghz']:.2f} GHz at {peak['flop_per_cycle_per_core']} FLOP/cycle "
        f"and 100% efficiency)"
    )
    print(f"peak: {peak['peak_flops'] / 1e9:.0f} GFLOP/s = {peak['derivation']}")
    rows = achieved(flops, peak, args.results)
    for r in rows:
        print(
            f"  {r['what']:<42} {r['arch']:<6} {r['flops'] / 1e9:7.1f} GFLOP/s "
            f"{100 * r['fraction_of_peak']:5.1f}% of peak, "
            f"{100 * r['fraction_of_matmul']:5.1f}% of matmul"
        )
    result.write({"flops": flops, "peak": peak, "train_factor": TRAIN_FACTOR, "achieved": rows})


if __name__ == "__main__":
    main()

"""Latency and throughput of the exported model: the SavedModel in process, ONNX Runtime on
the exported ``onnx/predict_label.onnx``, and ``dann-serve serve`` over gRPC (the official
tensorflow-serving-api stubs) and over REST. Beside them, the same gRPC requests go to a
server that runs no model at all and answers zeros: the cost of gRPC and protobuf alone,
the floor under any Python server's overhead. And the same images the cheaper ways the
model also takes: uint8 pixels to ``predict_label_uint8`` over gRPC, and 32x32 PNG files
(made once, as files on disk are) in base64 JSON to ``predict_image`` over REST, as
``curl`` or the client's REST route sends them.

For each path: batch-1 latency p50 and p99 over N sequential requests, and batch-256
images/s over M sequential requests, then the ratios to in process. Goals: gRPC batch-1
p50 within 1 ms of in process; gRPC batch-256 throughput at least 80% of in process;
ONNX Runtime batch-1 p50 at most half of in process; gRPC uint8 batch-256 at least 90%
of in process, REST base64 PNG batch-256 at least 50% of gRPC uint8. Afterwards, in
rounds of their own, variants of the ONNX Runtime session options (threads, spinning,
graph optimisation level, execution mode) are timed against in process again.

    python -m bench.serve_latency [--model-dir models] [--requests 400] [--batches 200]
        [--json bench/results/serve_latency.json]

Without --model-dir it trains and exports a tiny model into a temporary directory first
(about a minute); the figures measure serving overhead, not accuracy.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
import numpy as np
import onnxruntime

from bench._common import Result, argument_parser, newest_version, tiny_export
from bench.latency_paths import (
    GRPC_OPTIONS,
    SIGNATURE,
    grpc_call,
    in_process_call,
    onnx_call,
    onnx_graph,
    png_base64,
    rest_call,
    serve_no_model,
)
from dann_client.contract import PREDICT_LABEL_UINT8
from dann_client.preprocessing import to_model_input
from dann_serve.runtime import reuse_large_buffers
from harness.server_process import LocalServer, free_port

BIG_BATCH = 256
PATHS = (
    "in-process",
    "onnxruntime",
    "grpc",
    "grpc, no model",
    "grpc uint8",
    "rest b64 png",
    # Last in each round: its batch of 256 is 15 MB of JSON, after which the server hands
    # the freed memory back (serving/memory.py), and whichever path came next paid for
    # the trim and the fresh pages.
    "rest",
)
# Batch-256 requests per round of a path that takes seconds for one (JSON numbers): a
# few show that it is a hundred times slower, and more would make the run take hours.
SLOW_PATH_BATCHES = {"rest": 4}
# ONNX Runtime session options tried beside the default session (0 threads = one per core).
ORT_VARIANTS: dict[str, dict] = {
    "ort 1 thread": {"intra_op_num_threads": 1},
    "ort no spinning": {"config": {"session.intra_op.allow_spinning": "0"}},
    "ort 1 thread, basic opt": {
        "intra_op_num_threads": 1,
        "graph_optimization_level": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    },
    "ort no graph opt": {
        "graph_optimization_level": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    },
    "ort parallel mode": {"execution_mode": onnxruntime.ExecutionMode.ORT_PARALLEL},
}


class Recorder:
    """Timings of one path, gathered over several rounds."""

    def __init__(self, call: Callable[[np.ndarray], object]) -> None:
        self.call = call
        self.latencies: list[float] = []
        self.throughputs: list[float] = []

    def warm_up(self, one: np.ndarray, big: np.ndarray) -> None:
        for _ in range(20):
            self.call(one)
        self.call(big)

    def round(self, one: np.ndarray, big: np.ndarray, requests: int, batches: int) -> None:
        for _ in range(requests):
            start = time.perf_counter()
            self.call(one)
            self.latencies.append((time.perf_counter() - start) * 1000)
        # One batch untimed first: the first after another path's turn pays for the
        # switch (caches holding the other path's data, its idle threads to wake),
        # which says how the paths take turns here, not what serving costs.
        self.call(big)
        start = time.perf_counter()
        for _ in range(batches):
            self.call(big)
        self.throughputs.append(batches * len(big) / (time.perf_counter() - start))

    def figures(self, base: Recorder) -> dict[str, float]:
        """Medians over all requests and rounds. ``share`` is the median of each round's
        images/s over the in-process images/s of the same round: the paths of a round
        run seconds apart, so a slow spell of the (shared) machine cancels out of the
        ratio instead of landing on whichever path it hit."""
        shares = [
            mine / theirs for mine, theirs in zip(self.throughputs, base.throughputs, strict=True)
        ]
        return {
            "p50_ms": statistics.median(self.latencies),
            "p99_ms": float(np.percentile(self.latencies, 99)),
            "images_per_s": statistics.median(self.throughputs),
            "share": statistics.median(shares),
            "share_min": min(shares),
            "share_max": max(shares),
        }


def measure(
    calls: dict[str, Callable[[np.ndarray], object]],
    one: np.ndarray,
    big: np.ndarray,
    requests: int,
    batches: int,
    rounds: int,
) -> dict[str, dict[str, float]]:
    """Batch-1 p50/p99 in ms and batch-256 images/s per path.

    The paths take turns in short rounds, so a change in the machine's load (it is
    shared) falls on all of them alike instead of on whichever ran last.
    """
    recorders = {name: Recorder(call) for name, call in calls.items()}
    for recorder in recorders.values():
        recorder.warm_up(one, big)
    for _ in range(rounds):
        for name, recorder in recorders.items():
            count = min(max(1, batches // rounds), SLOW_PATH_BATCHES.get(name, batches))
            recorder.round(one, big, max(1, requests // rounds), count)
    base = recorders["in-process"]
    return {name: recorder.figures(base) for name, recorder in recorders.items()}


def twin_goals(figures: dict[str, dict[str, float]]) -> dict[str, bool]:
    """The cheaper inputs' goals: gRPC uint8 >= 90% of in process, REST PNG >= 50% of gRPC uint8
    (the ratio of their medians of the rounds' shares of in process)."""
    uint8, png = figures["grpc uint8"]["share"], figures["rest b64 png"]["share"]
    print(
        f"goal gRPC uint8 batch-256 throughput >= 90% of in process: {100 * uint8:.1f}% "
        f"{'met' if uint8 >= 0.9 else 'NOT met'}"
    )
    print(
        f"goal REST base64 PNG batch-256 throughput >= 50% of gRPC uint8: "
        f"{100 * png / uint8:.1f}% {'met' if png >= 0.5 * uint8 else 'NOT met'}"
    )
    return {
        "grpc_uint8_throughput_90pct": uint8 >= 0.9,
        "rest_png_half_of_grpc_uint8": png >= 0.5 * uint8,
    }


def report(figures: dict[str, dict[str, float]]) -> dict[str, str]:
    """Print the table and the goals; return each goal's verdict."""
    base = figures["in-process"]
    print(
        f"{'path':<24} {'b1 p50 ms':>10} {'b1 p99 ms':>10} {'b256 img/s':>11} "
        f"{'p50 +ms':>8} {'img/s %':>8}"
    )
    # img/s % is the median of the per-round ratios (see Recorder.figures)
    for name, row in figures.items():
        print(
            f"{name:<24} {row['p50_ms']:>10.3f} {row['p99_ms']:>10.3f} "
            f"{row['images_per_s']:>11.0f} {row['p50_ms'] - base['p50_ms']:>8.3f} "
            f"{100 * row['share']:>7.1f}%"
        )
    grpc_row = figures["grpc"]
    extra = grpc_row["p50_ms"] - base["p50_ms"]
    share = grpc_row["share"]
    print(
        f"goal gRPC batch-1 p50 within 1 ms of in process: +{extra:.3f} ms "
        f"{'met' if extra <= 1.0 else 'NOT met'}"
    )
    print(
        f"goal gRPC batch-256 throughput >= 80% of in process: {100 * share:.1f}% "
        f"{'met' if share >= 0.8 else 'NOT met'} (median of the rounds' ratios, range "
        f"{100 * grpc_row['share_min']:.1f}-{100 * grpc_row['share_max']:.1f}%)"
    )
    floor = figures["grpc, no model"]

    def batch_ms(row: dict[str, float]) -> float:
        return BIG_BATCH * 1000 / row["images_per_s"]

    print(
        f"gRPC over in process: +{extra:.3f} ms at batch 1, "
        f"+{batch_ms(grpc_row) - batch_ms(base):.2f} ms per batch of {BIG_BATCH}; the same "
        f"requests to a server without a model take {floor['p50_ms']:.3f} ms and "
        f"{batch_ms(floor):.2f} ms"
    )
    onnx_share = figures["onnxruntime"]["p50_ms"] / base["p50_ms"]
    print(
        f"goal ONNX Runtime batch-1 p50 <= 50% of in process: {100 * onnx_share:.1f}% "
        f"{'met' if onnx_share <= 0.5 else 'NOT met'}"
    )
    return {
        "grpc_p50_within_1ms": extra <= 1.0,
        "grpc_throughput_80pct": share >= 0.8,
        "onnx_p50_half": onnx_share <= 0.5,
        **twin_goals(figures),
    }


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="A tree holding dann/<version>/ (default: train a tiny one).",
    )
    parser.add_argument("--requests", type=int, default=400, help="batch-1 requests per path")
    parser.add_argument(
        "--batches", type=int, default=200, help="batch-256 requests per path (REST JSON: 40)"
    )
    parser.add_argument("--rounds", type=int, default=10, help="turns the paths take")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where the figures go (default bench/results/serve_latency.json)",
    )
    parser.add_argument(
        "--no-ort-variants", action="store_true", help="time the default ONNX Runtime session only"
    )
    return parser.parse_args()


def time_paths(
    model_dir: Path, version_dir: Path, workdir: Path, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Start the server and the no-model server, then time every path (and, unless
    told not to, the ONNX Runtime variants in rounds of their own)."""
    rng = np.random.default_rng(0)
    pixels = {n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for n in (1, BIG_BATCH)}
    one, big = (to_model_input(pixels[n]) for n in (1, BIG_BATCH))
    files = {n: png_base64(batch) for n, batch in pixels.items()}
    server = LocalServer(model_dir, workdir / "serve.log").wait_ready()
    no_model_port = free_port()
    no_model = multiprocessing.get_context("spawn").Process(
        target=serve_no_model, args=(no_model_port,), daemon=True
    )
    no_model.start()
    try:
        with (
            grpc.insecure_channel(server.grpc_address, options=GRPC_OPTIONS) as channel,
            grpc.insecure_channel(f"127.0.0.1:{no_model_port}", options=GRPC_OPTIONS) as bare,
        ):
            grpc.channel_ready_future(bare).result(timeout=120)
            calls = {
                "in-process": in_process_call(version_dir),
                "onnxruntime": onnx_call(version_dir),
                "grpc": grpc_call(channel),
                "grpc, no model": grpc_call(bare),
                "grpc uint8": grpc_call(channel, PREDICT_LABEL_UINT8, pixels),
                "rest b64 png": rest_call(server.rest_url, files),
                "rest": rest_call(server.rest_url),
            }
            figures = measure(calls, one, big, args.requests, args.batches, args.rounds)
            if args.no_ort_variants:
                return figures
            # Their own rounds, after the comparison above, so that the thread pools of
            # five more sessions cannot weigh on it; in process again as their reference.
            variants = {"in-process": calls["in-process"]} | {
                name: onnx_call(version_dir, options) for name, options in ORT_VARIANTS.items()
            }
            measured = measure(variants, one, big, args.requests, args.batches, args.rounds)
            return figures | {name: measured[name] for name in ORT_VARIANTS}
    finally:
        server.stop()
        no_model.kill()


def main() -> None:
    args = parse_args()
    # The same allocator setting as `dann-serve serve`, so that every path (the
    # in-process baseline included) reuses its big buffers instead of faulting in
    # fresh pages for each request.
    reuse_large_buffers()
    result = Result("serve_latency", args.json)
    with tempfile.TemporaryDirectory(prefix="serve-latency-") as scratch:
        model_dir = args.model_dir or tiny_export(Path(scratch))
        version_dir = newest_version(model_dir)
        figures = time_paths(model_dir, version_dir, Path(scratch), args)
        graph = onnx_graph(version_dir)
    print(
        f"model {version_dir}, signature {SIGNATURE}, {args.requests} batch-1 and "
        f"{args.batches} batch-{BIG_BATCH} requests per path, {os.cpu_count()} CPUs"
    )
    goals = report(figures)
    variants = {
        name: {**figures[name], "options": {k: str(v) for k, v in ORT_VARIANTS[name].items()}}
        for name in figures
        if name not in PATHS
    }
    result.write(
        {
            "signature": SIGNATURE,
            "requests": args.requests,
            "batches": args.batches,
            "big_batch": BIG_BATCH,
            "rounds": args.rounds,
            "model": "tiny export" if args.model_dir is None else str(version_dir),
            "paths": {name: figures[name] for name in PATHS},
            "ort_variants": variants,
            "onnx_graph": graph,
            "goals": goals,
        }
    )


if __name__ == "__main__":
    main()

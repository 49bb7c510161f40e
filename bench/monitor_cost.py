"""What the live monitor and traffic capture cost a served model, side by side in one run.

Three ``dann-serve serve`` processes over copies of one export: the monitor off
(``--no-monitor``), the monitor on (the default), and the monitor on with capture at
``--capture-rate`` into a temporary folder. Rounds take turns, in alternating order, so
that a noisy neighbour slows all three alike: per round, batch-1 gRPC latency over
``--requests`` sequential calls (its median) and batch-256 images/s over ``--batches``
sequential calls. Printed: each server's median over the rounds and, per round, the
ratios and differences against the monitor-off server, with the load average.

Goals: monitor on, batch-256 at least 97% of off and batch-1 p50 at most 0.05 ms
higher; monitor and capture at 0.1, batch-256 at least 95% of off.

    python -m bench.monitor_cost [--model-dir models] [--rounds 8] [--requests 200]
        [--batches 20] [--capture-rate 0.1] [--json bench/results/monitor_cost.json]

Without --model-dir a tiny model is trained and exported first (about a minute).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
import numpy as np

from bench._common import Result, argument_parser, tiny_export
from bench.latency_paths import GRPC_OPTIONS, grpc_call
from harness.server_process import LocalServer

BIG_BATCH = 256


def servers(model_dir: Path, workdir: Path, capture_rate: float) -> dict[str, LocalServer]:
    """The three servers, each over its own copy of the models (capture writes nothing
    there, but a server owns its folder's config file and version labels)."""
    options = {
        "monitor off": ("--no-monitor",),
        "monitor on": (),
        f"monitor + capture {capture_rate:g}": (
            *("--capture-dir", str(workdir / "capture")),
            *("--capture-rate", str(capture_rate)),
        ),
    }
    started = {}
    for index, (name, flags) in enumerate(options.items()):
        models = workdir / f"models-{index}"
        shutil.copytree(model_dir, models)
        started[name] = LocalServer(models, workdir / f"serve-{index}.log", *flags)
    try:
        for server in started.values():
            server.wait_ready()
    except BaseException:
        for server in started.values():
            server.stop()
        raise
    return started


def one_round(call: Callable, requests: int, batches: int) -> tuple[float, float]:
    """Batch-1 median latency (ms) and batch-256 images/s for one server."""
    one = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    big = np.random.default_rng(1).random((BIG_BATCH, 32, 32, 3), dtype=np.float32)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        call(one)
        times.append(time.perf_counter() - started)
    call(big)
    started = time.perf_counter()
    for _ in range(batches):
        call(big)
    return 1e3 * statistics.median(times), batches * BIG_BATCH / (time.perf_counter() - started)


def measure(
    calls: dict[str, Callable], rounds: int, requests: int, batches: int
) -> dict[str, dict]:
    """Every server's per-round figures, rounds taking turns in alternating order."""
    figures: dict[str, dict] = {name: {"p50_ms": [], "images_per_s": []} for name in calls}
    for call in calls.values():  # warm up: the first calls load and trace
        one_round(call, 20, 2)
    for index in range(rounds):
        order = list(calls) if index % 2 == 0 else list(reversed(calls))
        for name in order:
            p50, rate = one_round(calls[name], requests, batches)
            figures[name]["p50_ms"].append(p50)
            figures[name]["images_per_s"].append(rate)
    return figures


def report(figures: dict[str, dict]) -> dict[str, dict]:
    """Medians, and the per-round ratio and difference against the first server."""
    base_name = next(iter(figures))
    base = figures[base_name]
    out = {}
    for name, rows in figures.items():
        ratio = [a / b for a, b in zip(rows["images_per_s"], base["images_per_s"], strict=True)]
        delta = [a - b for a, b in zip(rows["p50_ms"], base["p50_ms"], strict=True)]
        out[name] = {
            "batch1_p50_ms": round(statistics.median(rows["p50_ms"]), 4),
            "batch256_images_per_s": round(statistics.median(rows["images_per_s"]), 1),
            f"batch256_ratio_to_{base_name}": round(statistics.median(ratio), 4),
            f"batch1_p50_delta_ms_to_{base_name}": round(statistics.median(delta), 4),
        }
        print(
            f"{name:26s} batch-1 p50 {out[name]['batch1_p50_ms']:.3f} ms "
            f"({statistics.median(delta):+.3f} ms), batch-256 "
            f"{out[name]['batch256_images_per_s']:,.0f} images/s "
            f"({statistics.median(ratio):.3f}x)",
            flush=True,
        )
    return out


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--capture-rate", type=float, default=0.1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = Result("monitor_cost", args.json)
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as scratch:
        workdir = Path(scratch)
        model_dir = args.model_dir or tiny_export(workdir)
        started = servers(model_dir, workdir, args.capture_rate)
        channels = {
            name: grpc.insecure_channel(server.grpc_address, options=GRPC_OPTIONS)
            for name, server in started.items()
        }
        try:
            calls = {name: grpc_call(channel) for name, channel in channels.items()}
            load_before = [round(x, 2) for x in os.getloadavg()]
            figures = measure(calls, args.rounds, args.requests, args.batches)
            captured = sum(1 for _ in (workdir / "capture").rglob("*.png"))
        finally:
            for channel in channels.values():
                channel.close()
            for server in started.values():
                server.stop()
    print(f"load average before {load_before}, after {[round(x, 2) for x in os.getloadavg()]}")
    print(f"captured {captured} images")
    result.write({"servers": report(figures), "captured_images": captured, "raw": figures})


if __name__ == "__main__":
    main()

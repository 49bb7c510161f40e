"""Load on ``dann-serve serve``, then a new version exported into it under load.

1. Steady load: 8 concurrent gRPC clients (official tensorflow-serving-api stubs, one
   channel each) send 500 batch-1 Predicts each, one at a time.
2. Export under load: the same clients keep sending while the trained run is exported
   again with ``dann_serve.export.export_run`` (in a separate process, as a user's
   ``dann-serve export`` would be) into the served model directory, and go on until
   each has been answered by the new version.

Prints p50/p99, requests and errors of both phases and the switch; exits 1 unless no
request failed, every client ended on the new version and none went back.

    python -m bench.load [--clients 8] [--requests 500] [--run RUN --model-dir DIR]
        [--serve-option=--capture-dir --serve-option=DIR ...]

Without --run it trains and exports a tiny model on the embedded fonts -> digits pair
first (a minute or two); the figures measure serving, not accuracy.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench._common import argument_parser
from dann_serve.serving.model_config import versions_on_disk
from harness.load import run_load
from harness.server_process import LocalServer


def tiny_run(workdir: Path) -> Path:
    from dann_serve.config import TrainConfig
    from dann_serve.training.loop import train_run

    train_run(
        TrainConfig(steps=60, batch_size=32, eval_every=30), workdir / "run", show_progress=False
    )
    return workdir / "run"


def _export(run: str, model_dir: str, report: multiprocessing.Queue) -> None:
    from dann_serve.export import export_run

    began = time.monotonic()
    result = export_run(run, model_dir, "dann")
    report.put((int(result.path.name), time.monotonic() - began))


def newest(model_dir: Path) -> int:
    return max(versions_on_disk(model_dir / "dann"), default=0)


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500, help="per client, steady phase")
    parser.add_argument("--batch", type=int, default=1, help="images per request")
    parser.add_argument(
        "--run",
        type=Path,
        default=None,
        help="a training run to export (default: train a tiny one)",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="served tree holding dann/<version>/ (default: export --run "
        "into a temporary one first)",
    )
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        metavar="ARG",
        help="passed to dann-serve serve, once per word: "
        "--serve-option=--capture-dir --serve-option=DIR",
    )
    return parser.parse_args()


def load_then_switch(run: Path, model_dir: Path, workdir: Path, args: argparse.Namespace):
    """Both phases against one server: the steady load, then the load under which
    ``run`` is exported again. Returns both results, the new version, how long its
    export took, and whether the server's log says it loaded it."""
    before = newest(model_dir)
    images = np.random.default_rng(0).random((16, args.batch, 32, 32, 3), dtype=np.float32)
    server = LocalServer(
        model_dir, workdir / "serve.log", "--poll-seconds", "0.5", *args.serve_option
    )
    server.wait_ready()
    exported: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()

    def export_under_load() -> None:
        process = multiprocessing.get_context("spawn").Process(
            target=_export, args=(str(run), str(model_dir), exported)
        )
        process.start()
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"the export under load failed with {process.exitcode}")

    try:
        steady = run_load(server.grpc_address, args.clients, args.requests, images)
        switch = run_load(
            server.grpc_address,
            args.clients,
            1,
            images,
            while_running=export_under_load,
            until_version=before + 1,
        )
        new_version, export_seconds = exported.get(timeout=5)
        loaded = f"serving dann version {new_version}" in server.log()
    finally:
        server.stop()
    return steady, switch, new_version, export_seconds, loaded


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        workdir = Path(scratch)
        run = args.run or tiny_run(workdir)
        model_dir = args.model_dir or workdir / "models"
        if not (model_dir / "dann").is_dir() or newest(model_dir) == 0:
            from dann_serve.export import export_run

            export_run(run, model_dir, "dann")
        before = newest(model_dir)
        steady, switch, new_version, export_seconds, loaded = load_then_switch(
            run, model_dir, workdir, args
        )

    print(f"{os.cpu_count()} CPUs, {args.clients} clients, batch {args.batch}")
    print(f"steady:          {steady.summary()}")
    print(f"export under load (version {new_version}, export took {export_seconds:.1f} s):")
    print(f"                 {switch.summary()}")
    for index, seen in enumerate(switch.versions):
        old = sum(1 for version in seen if version < new_version)
        print(
            f"  client {index}: {old} answers by version {before}, then "
            f"{len(seen) - old} by version {new_version}"
        )
    errors = steady.errors + switch.errors
    if errors:
        print("errors:", *errors[:10], sep="\n  ")
    ended = all(seen and seen[-1] == new_version for seen in switch.versions)
    monotonic = all(seen == sorted(seen) for seen in switch.versions)
    print(
        f"errors {len(errors)}; version {new_version} loaded: {loaded}; every client ended "
        f"on it: {ended}; no client went back: {monotonic}"
    )
    return 0 if not errors and loaded and ended and monotonic else 1


if __name__ == "__main__":
    sys.exit(main())

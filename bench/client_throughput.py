"""End-to-end images per second of ``dann-client`` against the way TensorFlow Serving's
documentation writes a client, and of its uint8 requests against its float32 ones.

Both sides read the same PNG files with Pillow, apply the same preprocessing
(``dann_client.preprocessing``), ask the same ``dann-serve serve`` process over gRPC
and print one JSON line per image (to ``/dev/null``). They differ only in how they
talk to the server:

- ours: ``dann-client predict DIR --json > /dev/null``, timed as a user runs it (a
  subprocess, start-up included), and the library (``predict_files``) in process;
- ours with float32: the same CLI and library sending float32 pixels / 255 to
  ``predict_label``, which is what the client does for an export without
  ``predict_label_uint8`` (the CLI asks a copy of the model stripped of it, served
  beside it as ``old``; the library is told to send float32);
- the float32-only CLI, the one the uint8 goal is measured against: ``client/`` of the
  last commit before the client could send uint8 (``--filed-client``, taken with ``git
  archive``), run with ``python -m dann_client`` against the same server;
- baseline: TensorFlow Serving's example client (``resnet_client_grpc.py``):
  ``tensorflow_serving.apis`` stubs, ``tf.make_tensor_proto``, one image per
  ``Predict`` call, ``tf.make_ndarray`` on the answer. It is timed in this process
  with TensorFlow already imported, which spares it the seconds of import a user's
  script would pay: the comparison is generous to the baseline.

Two ceilings are timed beside them, to show where the time goes: our requests sent
from arrays already in memory (no files, no printing: the most any client could get
from this server), and the SavedModel called in this process (the model's own speed
here, no server at all). The paths take turns in each repeat, so a change in load on
this shared machine falls on all of them alike; the figures are medians over the
repeats. Goals: ours at least 10x the baseline and at least 2,000 images/s; the
uint8 CLI at least 1.5x the float32-only CLI (the float32 path of today's CLI shows
what the wire alone changes).

    python -m bench.client_throughput [--model-dir models] [--images 10000]
        [--baseline-images 2000] [--repeats 3] [--json bench/results/client_throughput.json]

Images: the MNIST test set from ``../shared/data/mnist`` when present (28x28 grey PNGs),
else synthetic font digits (32x32 RGB PNGs). Without ``--model-dir`` a tiny model is
trained and exported first (about a minute); the figures measure the client and the
wire, not accuracy.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

from bench._common import (
    SHARED_DATA,
    Result,
    argument_parser,
    newest_version,
    own_cpu_seconds,
    process_cpu_seconds,
    tiny_export,
)
from bench.client_paths import (
    OLD_MODEL,
    cli_labels,
    filed_client,
    model_in_process,
    ours_cli,
    ours_library,
    serving_copy,
    wire_ceiling,
)
from bench.documented_client import baseline, baseline_labels
from dann_client.contract import PREDICT_LABEL
from dann_client.preprocessing import load_images
from dann_client.remote import Wire
from harness.server_process import LocalServer

MNIST_IMAGES = SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz"
GOAL_RATIO = 10.0
GOAL_IMAGES_PER_S = 2000.0
GOAL_UINT8_RATIO = 1.5  # the uint8 CLI against the float32-only one
# The last commit before the client could send uint8: its client only ever sent float32.
FILED_CLIENT = "f105fb9^"
WIRES = {"uint8": None, "float32": (Wire.FLOAT32,)}  # None: what the model takes best


# -- inputs -----------------------------------------------------------------------------


def read_idx_images(path: Path) -> np.ndarray:
    """uint8 ``[N, rows, cols]`` from a gzipped IDX3 file (magic 2051, big-endian)."""
    raw = gzip.decompress(path.read_bytes())
    magic, count, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 2051:
        raise SystemExit(f"{path}: not an IDX3 image file (magic {magic})")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def write_pngs(directory: Path, count: int) -> str:
    """``count`` PNG files in ``directory``; returns where their pixels came from."""
    if MNIST_IMAGES.is_file():
        pixels, source = read_idx_images(MNIST_IMAGES), f"MNIST test set ({MNIST_IMAGES})"
    else:
        from dann_serve.data.fonts import generate

        pixels, source = generate(min(count, 2000), seed=5).images, "synthetic font digits"
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):  # cycles through the source if it has fewer images
        Image.fromarray(pixels[index % len(pixels)]).save(directory / f"{index:05d}.png")
    return source


# -- measuring --------------------------------------------------------------------------


def measure(
    paths: dict[str, Callable[[], int]], repeats: int, server_pid: int
) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """images/s of each path in every repeat (the paths take turns within a repeat), and
    the CPU seconds per image that the client side and the server spent on it."""
    rates: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, dict[str, list[float]]] = {n: {"client": [], "server": []} for n in paths}
    for repeat in range(repeats):
        for name, run in paths.items():
            client, server = own_cpu_seconds(), process_cpu_seconds(server_pid)
            start = time.perf_counter()
            count = run()
            seconds = time.perf_counter() - start
            rates[name].append(count / seconds)
            cpu[name]["client"].append((own_cpu_seconds() - client) / count)
            cpu[name]["server"].append((process_cpu_seconds(server_pid) - server) / count)
            print(
                f"  repeat {repeat + 1}: {name:<20} {count:6d} images in {seconds:6.2f} s "
                f"= {count / seconds:8.0f} images/s",
                flush=True,
            )
    return rates, cpu


def cores_trade(value: float) -> float:
    """The images/s that ``value`` µs of CPU per image allow on this machine's cores,
    or, the same division, the µs per image that ``value`` images/s allow."""
    return 1e6 * (os.cpu_count() or 1) / value


def cpu_bound(cpu: dict[str, dict[str, list[float]]], name: str) -> dict[str, float]:
    """Median CPU microseconds per image of a path, client and server, and the most
    images/s that CPU time allows when both share this machine's cores: however well
    the two overlap, N images take (client + server CPU) / cores seconds at least."""
    client = 1e6 * statistics.median(cpu[name]["client"])
    server = 1e6 * statistics.median(cpu[name]["server"])
    return {
        "client_cpu_us": client,
        "server_cpu_us": server,
        "max_images_per_s": cores_trade(client + server),
    }


LABELS = {
    "dann-client": "dann-client predict DIR --json (CLI{images}: uint8)",
    "dann-client float32": "the same CLI, float32 (an export without the uint8 twin)",
    "dann-client as filed": "the float32-only CLI (before uint8 requests)",
    "library": "dann_client.predict_files (in process{images}: uint8)",
    "library float32": "the same library, float32",
    "baseline": "baseline, TF Serving docs' client ({baseline} files)",
    "wire ceiling": "ceiling: our uint8 requests from memory, no files, no printing",
    "wire ceiling float32": "ceiling: the same, float32",
    "model": "ceiling: the SavedModel in process, no server",
}


def print_cpu_budget(
    bounds: dict[str, dict], medians: dict[str, float], filed: float | None
) -> None:
    """What the CPU the CLI runs took allows on these cores, and what the goal needs."""
    print(f"CPU per image of the CLI runs ({os.cpu_count()} cores shared by client and server):")
    for name, bound in bounds.items():
        print(
            f"  {name:<22} client {bound['client_cpu_us']:5.0f} us + server "
            f"{bound['server_cpu_us']:5.0f} us: at most {bound['max_images_per_s']:6.0f} "
            f"images/s on these cores, ran at {medians[name]:6.0f}"
        )
    if filed is not None:
        print(
            f"  the uint8 goal needs {GOAL_UINT8_RATIO * filed:.0f} images/s: at most "
            f"{cores_trade(GOAL_UINT8_RATIO * filed):.0f} us of CPU per "
            "image, client and server together"
        )


def report(
    rates: dict[str, list[float]],
    cpu: dict[str, dict[str, list[float]]],
    args: argparse.Namespace,
    source: str,
    wire: str,
) -> dict:
    """Print the medians and ratios; return them as a JSON-ready dict."""
    medians = {name: statistics.median(values) for name, values in rates.items()}
    bounds = {name: cpu_bound(cpu, name) for name in cpu if name.startswith("dann-client")}
    ours, base = medians["dann-client"], medians["baseline"]
    ratio = ours / base
    met = ratio >= GOAL_RATIO and ours >= GOAL_IMAGES_PER_S
    uint8_ratio = ours / medians["dann-client float32"]
    filed = medians.get("dann-client as filed")
    filed_ratio = ours / filed if filed else None
    uint8_met = filed_ratio is not None and filed_ratio >= GOAL_UINT8_RATIO
    print(f"\nmedian images/s over {args.repeats} repeats ({os.cpu_count()} CPUs, shared):")
    for name, label in LABELS.items():
        label = label.format(images=f", {args.images} files", baseline=args.baseline_images)
        if name in medians:
            print(f"  {label:<66} {medians[name]:8.0f}")
    print(f"ratio dann-client / baseline:           {ratio:6.1f}x   (goal >= {GOAL_RATIO:.0f}x)")
    print(f"ratio wire ceiling / baseline:          {medians['wire ceiling'] / base:6.1f}x")
    print(f"dann-client / wire ceiling:             {100 * ours / medians['wire ceiling']:6.1f}%")
    print(
        f"ratio dann-client uint8 / float32:      {uint8_ratio:6.2f}x   "
        f"(the new export took {wire}; the wire alone)"
    )
    if filed_ratio is not None:
        print(
            f"ratio dann-client / float32-only CLI:   {filed_ratio:6.2f}x   "
            f"(goal >= {GOAL_UINT8_RATIO}x)"
        )
    print_cpu_budget(bounds, medians, filed)
    print(
        f"goal >= {GOAL_RATIO:.0f}x the baseline and >= {GOAL_IMAGES_PER_S:.0f} images/s: "
        f"{'met' if met else 'NOT met'}; uint8 goal: {'met' if uint8_met else 'NOT met'}"
    )
    return {
        "images": args.images,
        "baseline_images": args.baseline_images,
        "source": source,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "wire": wire,
        "images_per_s": {name: {"median": medians[name], "runs": rates[name]} for name in rates},
        "cpu_per_image": bounds,
        "ratio_cli_to_baseline": ratio,
        "goal_met": met,
        "ratio_uint8_to_float32": uint8_ratio,
        "filed_client": args.filed_client or None,
        "ratio_to_filed_client": filed_ratio,
        "uint8_goal_met": uint8_met,
    }


def timed_paths(
    address: str, workdir: Path, model_dir: Path, files: list[Path], args: argparse.Namespace
) -> dict[str, Callable[[], int]]:
    """What ``measure`` times, by name: each of ours in uint8 and in float32."""
    pixels = load_images(files)[0]
    folder = workdir / "images"
    filed = filed_client(args.filed_client, workdir)
    if filed and cli_labels(address, files[:200], client=filed) != cli_labels(address, files[:200]):
        raise SystemExit("the float32-only client disagrees with today's on the labels")
    return {
        "dann-client": ours_cli(address, folder),
        "dann-client float32": ours_cli(address, folder, OLD_MODEL),
        **({"dann-client as filed": ours_cli(address, folder, client=filed)} if filed else {}),
        "library": ours_library(address, folder, WIRES["uint8"]),
        "library float32": ours_library(address, folder, WIRES["float32"]),
        "baseline": baseline(address, files[: args.baseline_images]),
        "wire ceiling": wire_ceiling(address, pixels, WIRES["uint8"]),
        "wire ceiling float32": wire_ceiling(address, pixels, WIRES["float32"]),
        "model": model_in_process(newest_version(model_dir), pixels),
    }


def check_labels(address: str, files: list[Path]) -> str:
    """Both of our encodings and the baseline answer alike; the encoding the new export
    takes (``uint8`` unless it has no uint8 twin)."""
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    sample = files[:200]
    ours = cli_labels(address, sample)
    if ours != baseline_labels(address, sample) or ours != cli_labels(address, sample, OLD_MODEL):
        raise SystemExit("dann-client (uint8, float32) and the baseline disagree on the labels")
    with Transport(address) as transport:
        return GrpcBackend(transport).route(PREDICT_LABEL).wire.value


def main() -> int:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="A tree holding dann/<version>/ (default: train and export a tiny one).",
    )
    parser.add_argument("--images", type=int, default=10_000, help="PNG files for our client")
    parser.add_argument(
        "--baseline-images",
        type=int,
        default=2_000,
        help="the first N of them for the one-image-per-request baseline",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path (>= 3)")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where the figures go (default bench/results/client_throughput.json)",
    )
    parser.add_argument(
        "--filed-client",
        default=FILED_CLIENT,
        help="commit whose client/ is timed as the float32-only client ('' to skip)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args()
    result = Result("client_throughput", args.json)
    if args.repeats < 3 or args.baseline_images < 1_000 or args.images < args.baseline_images:
        parser.error("need --repeats >= 3 and 1000 <= --baseline-images <= --images")

    with tempfile.TemporaryDirectory(prefix="client-throughput-") as scratch:
        workdir = Path(scratch)
        model_dir = serving_copy(args.model_dir or tiny_export(workdir), workdir)
        source = write_pngs(workdir / "images", args.images)
        files = sorted((workdir / "images").iterdir())
        server = LocalServer(model_dir, workdir / "serve.log").wait_ready()
        try:
            wire = check_labels(server.grpc_address, files)
            paths = timed_paths(server.grpc_address, workdir, model_dir, files, args)
            print(
                f"{args.images} PNG files from the {source}; the baseline times the first "
                f"{args.baseline_images} of them; the new export takes {wire}"
            )
            rates, cpu = measure(paths, args.repeats, server.process.pid)
        finally:
            server.stop()

    figures = report(rates, cpu, args, source, wire)
    result.write(figures)
    goals = figures["goal_met"] and figures["uint8_goal_met"]
    return 1 if args.strict and not goals else 0


if __name__ == "__main__":
    sys.exit(main())

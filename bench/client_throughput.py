"""End-to-end images per second of ``dann-client`` against the way TensorFlow Serving's
documentation writes a client (issue 5, acceptance 5), and of its uint8 requests against
its float32 ones (issue 18, acceptance 2).

Both sides read the same PNG files with Pillow, apply the same preprocessing
(``dann_client.preprocessing``), ask the same ``dann-serve serve`` process over gRPC
and print one JSON line per image (to ``/dev/null``). They differ only in how they
talk to the server:

- ours: ``dann-client predict DIR --json > /dev/null``, timed as a user runs it (a
  subprocess, start-up included), and the library (``predict_files``) in process;
- ours with float32, as before issue 18: the same CLI and library sending float32
  pixels / 255 to ``predict_label``, which is what the client does for an export
  without ``predict_label_uint8`` (the CLI asks a copy of the model stripped of it,
  served beside it as ``old``; the library is told to send float32);
- the CLI as issue 18 found it ("today's figure" of its goal): ``client/`` of the last
  commit before the issue's work (``--filed-client``, taken with ``git archive``), run
  with ``python -m dann_client`` against the same server, float32 as it always sent;
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
uint8 CLI at least 1.5x the CLI as issue 18 found it (the float32 path of today's CLI
shows what the wire alone changes).

    python bench/client_throughput.py [--model-dir models] [--images 10000]
        [--baseline-images 2000] [--repeats 3] [--json bench/results/client_throughput.json]

Images: the MNIST test set from ``../shared/data/mnist`` when present (28x28 grey PNGs),
else synthetic font digits (32x32 RGB PNGs). Without ``--model-dir`` a tiny model is
trained and exported first (about a minute); the figures measure the client and the
wire, not accuracy.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from dann_client.contract import DEFAULT_BATCH_SIZE as BATCH
from dann_client.preprocessing import image_to_array, load_images, to_model_input
from dann_client.remote import Wire
from dann_serve.serving.model_config import add_model_to_config

from _common import (
    Result,
    client_command,
    newest_version,
    own_cpu_seconds,
    process_cpu_seconds,
    tiny_export,
)
from harness.exports import copy_without_signatures
from harness.server_process import LocalServer

ROOT = Path(__file__).resolve().parent.parent
MNIST_IMAGES = ROOT.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
SIGNATURE = "predict_label"
GOAL_RATIO = 10.0
GOAL_IMAGES_PER_S = 2000.0
GOAL_UINT8_RATIO = 1.5  # issue 18: the uint8 CLI against "today's figure", the client it found
OLD_MODEL = "old"  # the export without predict_label's twins, as before issue 18
# The last commit before issue 18's first change: its client is the one the issue measured.
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


# -- the three ways to predict a folder -------------------------------------------------


def serving_copy(model_dir: Path, workdir: Path) -> Path:
    """A copy of the model tree with the newest ``dann`` also served as ``old``, without
    ``predict_image`` and ``predict_label_uint8``: the float32 client's model. The
    user's tree is left as it is."""
    copy = workdir / "served"
    shutil.copytree(model_dir, copy)
    copy_without_signatures(newest_version(copy), copy / OLD_MODEL / "1")
    add_model_to_config(copy / "models.config", OLD_MODEL)
    return copy


def ours_cli(
    address: str, directory: Path, model: str = "dann", client: Path | None = None
) -> Callable[[], int]:
    """``dann-client predict DIR --json --server ADDRESS --model MODEL > /dev/null``, run
    as :func:`client_invocation` says."""
    start, env = client_invocation(client)
    command = [*start, "predict", str(directory), "--json", "--server", address]
    command += ["--model", model]

    def run() -> int:
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=env)
        return len(os.listdir(directory))

    return run


def client_invocation(client: Path | None) -> tuple[list[str], dict[str, str] | None]:
    """The command start and environment that run ``dann-client``: the installed one,
    or with ``client``, that folder's ``dann_client`` (``python -m``)."""
    if client is None:
        return client_command(), None
    return [sys.executable, "-m", "dann_client"], {**os.environ, "PYTHONPATH": str(client)}


def filed_client(rev: str, workdir: Path) -> Path | None:
    """The ``client/`` folder of commit ``rev`` (``git archive``), to run the client as
    issue 18 found it in the same run; None, with a note, where git or the commit is
    missing (a copy without history)."""
    if not rev:
        return None
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "client"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"no client as issue 18 found it ({rev}): {error}", flush=True)
        return None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(workdir / "filed", filter="data")
    return workdir / "filed" / "client"


def ours_library(
    address: str, directory: Path, wires: tuple[Wire, ...] | None = None
) -> Callable[[], int]:
    """``predict_files`` on the folder, each result printed as JSON to ``os.devnull``;
    ``wires`` as ``GrpcBackend`` takes it (float32 only: the requests before issue 18)."""
    from dann_client.inputs import expand_inputs
    from dann_client.output import prediction_json
    from dann_client.predict import predict_files
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    def run() -> int:
        count = 0
        with open(os.devnull, "w") as out, Transport(address) as transport:
            backend = GrpcBackend(transport, wires=wires)
            for result in predict_files(expand_inputs([str(directory)]), backend):
                out.write(prediction_json(result) + "\n")
                count += 1
        return count

    return run


def wire_ceiling(
    address: str, images: np.ndarray, wires: tuple[Wire, ...] | None = None
) -> Callable[[], int]:
    """The same requests as ours (the client's batch size, 3 in flight) from uint8 pixels already
    in memory, nothing read or printed: what the server gives a client that costs nothing."""
    from dann_client.predict import predict_arrays
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    batches = np.array_split(images, range(BATCH, len(images), BATCH))

    def run() -> int:
        with Transport(address) as transport, ThreadPoolExecutor(3) as pool:
            backend = GrpcBackend(transport, wires=wires)
            list(pool.map(lambda batch: predict_arrays(backend, batch), batches))
        return len(images)

    return run


def model_in_process(version_dir: Path, images: np.ndarray) -> Callable[[], int]:
    """The SavedModel called in this process on the client's batches: the model's own speed
    on this machine, with no server, wire or files at all."""
    function = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]
    floats = to_model_input(images)
    batches = [tf.constant(b) for b in np.array_split(floats, range(BATCH, len(floats), BATCH))]

    def run() -> int:
        for batch in batches:
            function(images=batch)["label"].numpy()
        return len(images)

    return run


def documented_request(path: Path) -> predict_pb2.PredictRequest:
    """One image as TensorFlow Serving's example client sends it: PIL, make_tensor_proto."""
    with Image.open(path) as image:
        data = to_model_input(image_to_array(image)[None])
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "dann"
    request.model_spec.signature_name = SIGNATURE
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(data, shape=data.shape))
    return request


def baseline(address: str, paths: list[Path]) -> Callable[[], int]:
    """TensorFlow Serving's documented client: one image per request, official stubs."""

    def run() -> int:
        channel = grpc.insecure_channel(address)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with open(os.devnull, "w") as out:
            for path in paths:
                result = stub.Predict(documented_request(path), 10.0)  # 10 secs timeout
                probabilities = tf.make_ndarray(result.outputs["probabilities"])[0]
                label = int(tf.make_ndarray(result.outputs["label"])[0])
                record = {
                    "path": str(path),
                    "label": label,
                    "confidence": round(float(probabilities[label]), 6),
                    "probabilities": [round(float(p), 6) for p in probabilities],
                }
                out.write(json.dumps(record) + "\n")
        channel.close()
        return len(paths)

    return run


def baseline_labels(address: str, paths: list[Path]) -> list[int]:
    """The baseline's labels, to check that both sides answer the same question."""
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return [
            int(tf.make_ndarray(stub.Predict(documented_request(p), 10.0).outputs["label"])[0])
            for p in paths
        ]


def cli_labels(
    address: str, paths: list[Path], model: str = "dann", client: Path | None = None
) -> list[int]:
    start, env = client_invocation(client)
    command = [*start, "predict", *map(str, paths), "--json", "--server", address]
    command += ["--model", model]
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return [json.loads(line)["label"] for line in result.stdout.splitlines()]


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


def cpu_bound(cpu: dict[str, dict[str, list[float]]], name: str) -> dict[str, float]:
    """Median CPU microseconds per image of a path, client and server, and the most
    images/s that CPU time allows when both share this machine's cores: however well
    the two overlap, N images take (client + server CPU) / cores seconds at least."""
    client = 1e6 * statistics.median(cpu[name]["client"])
    server = 1e6 * statistics.median(cpu[name]["server"])
    return {
        "client_cpu_us": client,
        "server_cpu_us": server,
        "max_images_per_s": 1e6 * (os.cpu_count() or 1) / (client + server),
    }


LABELS = {
    "dann-client": "dann-client predict DIR --json (CLI{images}: uint8)",
    "dann-client float32": "the same CLI, float32 (an export before issue 18)",
    "dann-client as filed": "the CLI as issue 18 found it (float32)",
    "library": "dann_client.predict_files (in process{images}: uint8)",
    "library float32": "the same library, float32",
    "baseline": "baseline, TF Serving docs' client ({baseline} files)",
    "wire ceiling": "ceiling: our uint8 requests from memory, no files, no printing",
    "wire ceiling float32": "ceiling: the same, float32",
    "model": "ceiling: the SavedModel in process, no server",
}


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
            f"ratio dann-client / as issue 18 found it: {filed_ratio:4.2f}x   "
            f"(goal >= {GOAL_UINT8_RATIO}x)"
        )
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
            f"{1e6 * (os.cpu_count() or 1) / (GOAL_UINT8_RATIO * filed):.0f} us of CPU per "
            "image, client and server together"
        )
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
        raise SystemExit("the client as issue 18 found it disagrees with today's on the labels")
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
    takes (``uint8`` unless it predates issue 18)."""
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    sample = files[:200]
    ours = cli_labels(address, sample)
    if ours != baseline_labels(address, sample) or ours != cli_labels(address, sample, OLD_MODEL):
        raise SystemExit("dann-client (uint8, float32) and the baseline disagree on the labels")
    with Transport(address) as transport:
        return GrpcBackend(transport).route(SIGNATURE).wire.value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        help="commit whose client/ is timed as the client issue 18 found ('' to skip)",
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

"""How much faster does a run on a folder of images start the second time? (the decode
cache; goal: the data-loading part of the second start-up at least 10x faster)

Writes 10,000 PNG files into a temporary folder: the first half as a labelled source
folder (one subfolder per digit), the second half as an unlabelled target folder.
Their pixels are MNIST's 10,000 test images (28x28 grey) from ``--mnist DIR`` when its
IDX files are there, else scikit-learn's handwritten digits cut to 28x28, repeated.
It then times the data-loading part of a run's start-up,
``dann_serve.training.loop.load_pair`` (both domains, exactly what ``dann-serve
train`` calls before it builds the model), twice on one fresh cache directory
(``$DANN_CACHE_DIR``): first with the cache empty, every file decoded through
``dann_client.preprocessing`` and the cache written; second with the cache filled.
Each load runs in a fresh process that has imported TensorFlow, as a run's does (a
second load in the process of the first would find its memory already mapped).
Each pair of loads takes a fresh cache directory, twice per repeat: "warm", every
file in the OS page cache (the PNG files and the cache file just written: the worst
case for the ratio, and the one the goal is judged on), and "cold", the PNG files
dropped from the page cache before the first load and the cache file before the
second (``posix_fadvise``: only these files' pages; a run on photos not read
lately). The figures are medians over the repeats. With ``--whole-runs N`` (default
1) it also times the whole command, ``dann-serve train --steps 1``, first and second,
as fresh processes on a fresh cache directory each time: the start-up a user waits
for, TensorFlow and all.

    python -m bench.decode_cache [--images 10000] [--repeats 3] [--mnist DIR]
        [--whole-runs 1] [--json bench/results/decode_cache.json] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench._common import SHARED_DATA, Result, argument_parser, median

GOAL_RATIO = 10.0
MNIST = SHARED_DATA / "mnist"
MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def digit_pixels(mnist: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Grey 28x28 digits, their labels, and where they came from."""
    from dann_serve.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, read_idx

    if mnist is not None and all((mnist / name).is_file() for name in MNIST_FILES):
        images = read_idx(mnist / MNIST_FILES[0], IMAGES_MAGIC)
        labels = read_idx(mnist / MNIST_FILES[1], LABELS_MAGIC)
        return images, labels.astype(np.int64), f"MNIST test set ({mnist})"
    from dann_serve.data.digits import load_digits

    domain = load_digits()  # MNIST layout: a 2-pixel black frame around 28x28
    images = np.concatenate([domain.train.images, domain.test.images])[:, 2:30, 2:30, 0]
    labels = np.concatenate([domain.train.labels, domain.test.labels])
    return images, labels, "scikit-learn's handwritten digits, 28x28, repeated"


def write_folders(root: Path, count: int, mnist: Path | None) -> tuple[Path, Path, str]:
    """``count`` PNG files: the first half in ``root/source/<digit>/``, the rest in
    ``root/target/`` (100 files per subfolder); returns both folders and the source."""
    images, labels, origin = digit_pixels(mnist)
    source, target = root / "source", root / "target"
    half = count // 2
    for index in range(count):
        pixels, label = images[index % len(images)], int(labels[index % len(images)])
        if index < half:
            path = source / str(label) / f"{index:05d}.png"
        else:
            path = target / f"{(index - half) // 100:03d}" / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return source, target, origin


def evict(paths: list[Path]) -> bool:
    """Drop ``paths`` from the OS page cache (only their pages, nobody else's); False
    where the system cannot. Each is written out first: dirty pages are not dropped."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)
    return True


# One run's data loading, in a fresh process as a run's is: TensorFlow imported first
# (as `dann-serve train` does), then load_pair timed; prints seconds and a digest of
# the arrays.
LOAD_ONE = """
import hashlib, json, sys, time
from dann_serve.runtime import load_tensorflow
load_tensorflow()
from dann_serve.config import TrainConfig
from dann_serve.training.loop import load_pair
config = TrainConfig(source=sys.argv[1], target=sys.argv[2])
start = time.perf_counter()
pair = load_pair(config)
seconds = time.perf_counter() - start
digest = hashlib.sha256()
for domain in pair:
    for split in (domain.train, domain.test):
        digest.update(split.images.tobytes())
print(json.dumps({"seconds": seconds, "digest": digest.hexdigest()}))
"""


def load_once(source: Path, target: Path, cache: Path) -> tuple[float, str]:
    """Seconds of ``load_pair`` in a fresh process on ``cache``, and its arrays' digest."""
    environment = {**os.environ, "DANN_CACHE_DIR": str(cache)}
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    done = subprocess.run(
        [sys.executable, "-c", LOAD_ONE, str(source), str(target)],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["seconds"], figures["digest"]


def time_loading(source: Path, target: Path, repeats: int, scratch: Path) -> dict[str, list]:
    """Seconds of ``load_pair`` with an empty cache and then a filled one, each in a
    fresh process, ``repeats`` times, each pair on a fresh cache directory: "warm" with
    every file in the OS page cache (the PNG files just written, the cache file just
    written), "cold" with the PNG files dropped from it before the first load and the
    cache file before the second. Also the size of the cache files."""
    pngs = sorted(source.rglob("*.png")) + sorted(target.rglob("*.png"))
    times: dict[str, list] = {"cache_bytes": []}
    for repeat in range(repeats):
        for page_cache in ("warm", "cold"):
            cache = scratch / f"cache-{repeat}-{page_cache}"
            digests = []
            for when in ("first", "second"):
                if page_cache == "cold":
                    stored = pngs if when == "first" else sorted(cache.glob("*.npz"))
                    if not evict(stored):
                        break
                seconds, digest = load_once(source, target, cache)
                times.setdefault(f"{when}_{page_cache}", []).append(seconds)
                digests.append(digest)
            if len(set(digests)) > 1:
                raise SystemExit("the cached images differ from the decoded ones")
        times["cache_bytes"].append(sum(path.stat().st_size for path in cache.glob("*.npz")))
        print(
            f"repeat {repeat + 1}: "
            + "; ".join(
                f"{page_cache} page cache: first {times[f'first_{page_cache}'][-1]:.2f} s, "
                f"second {times[f'second_{page_cache}'][-1]:.3f} s"
                for page_cache in ("warm", "cold")
                if f"second_{page_cache}" in times
            ),
            flush=True,
        )
    return times


def dann_serve_command() -> list[str]:
    script = Path(sys.executable).with_name("dann-serve")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dann_serve"]


def time_whole_runs(source: Path, target: Path, runs: int, scratch: Path) -> dict[str, list]:
    """Wall seconds of ``dann-serve train --steps 1``, first and second, in fresh
    processes, ``runs`` times, each on a fresh cache directory."""
    times: dict[str, list] = {"first": [], "second": []}
    for run in range(runs):
        environment = {**os.environ, "DANN_CACHE_DIR": str(scratch / f"whole-cache-{run}")}
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for when in ("first", "second"):
            command = [
                *dann_serve_command(),
                "train",
                "--source",
                str(source),
                "--target",
                str(target),
                "--steps",
                "1",
                "--batch-size",
                "32",
                "--eval-every",
                "1",
                "--quiet",
                "--out",
                str(scratch / f"run-{run}-{when}"),
            ]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=environment)
            times[when].append(time.perf_counter() - start)
        print(
            f"whole run {run + 1}: first {times['first'][-1]:.1f} s, "
            f"second {times['second'][-1]:.1f} s",
            flush=True,
        )
    return times


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="PNG files to write")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed first/second loads, each on a fresh cache"
    )
    parser.add_argument(
        "--mnist",
        type=Path,
        default=MNIST,
        help=f"folder of MNIST's t10k IDX files (default {MNIST}; synthetic digits if absent)",
    )
    parser.add_argument(
        "--whole-runs",
        type=int,
        default=1,
        help="timed first/second `dann-serve train --steps 1` commands (0: none)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="default bench/results/decode_cache.json"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if the goal is missed")
    args = parser.parse_args()
    if args.images < 200 or args.repeats < 1:
        parser.error("--images must be at least 200 and --repeats at least 1")
    return args


def loading_figures(loading: dict[str, list], images: int) -> dict:
    """First load against second, with the files in the page cache and (where they could
    be evicted) without; printed as they are summarised."""
    figures: dict = {"load_pair_seconds": {}}
    for page_cache in ("warm", "cold"):
        if f"second_{page_cache}" not in loading:
            continue
        runs = {when: loading[f"{when}_{page_cache}"] for when in ("first", "second")}
        first, second = median(runs["first"]), median(runs["second"])
        figures["load_pair_seconds"][page_cache] = {
            when: {"median": median(values), "runs": values} for when, values in runs.items()
        }
        figures[f"ratio_{page_cache}"] = first / second
        figures[f"goal_met_{page_cache}"] = first / second >= GOAL_RATIO
        print(
            f"  files {'in' if page_cache == 'warm' else 'not in'} the page cache: first "
            f"{first:.3f} s ({images / first:,.0f} images/s), second {second:.3f} s: "
            f"{first / second:.1f}x (goal >= {GOAL_RATIO:.0f}x: "
            f"{'meets' if first / second >= GOAL_RATIO else 'MISSES'})"
        )
    return figures


def whole_run_figures(whole: dict[str, list], runs: int) -> dict:
    first, second = median(whole["first"]), median(whole["second"])
    print(
        f"  whole `dann-serve train --steps 1` ({runs} run(s) each): first "
        f"{first:.1f} s, second {second:.1f} s ({first - second:.1f} s saved)"
    )
    return {
        "whole_runs": runs,
        "train_steps_1_seconds": {
            when: {"median": median(whole[when]), "runs": whole[when]}
            for when in ("first", "second")
        },
    }


def main() -> int:
    args = parse_args()
    result = Result("decode_cache", args.json)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="decode-cache-") as scratch_name:
        scratch = Path(scratch_name)
        written = time.perf_counter()
        source, target, origin = write_folders(scratch / "images", args.images, args.mnist)
        written = time.perf_counter() - written
        print(f"{args.images:,} PNG files ({origin}) written in {written:.1f} s", flush=True)
        loading = time_loading(source, target, args.repeats, scratch)
        whole = time_whole_runs(source, target, args.whole_runs, scratch)

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\ndata loading of a run on {args.images:,} PNG files (load_pair), medians of")
    print(f"{args.repeats} repeats, load average {load} on {os.cpu_count()} CPUs:")
    figures = {
        "images": args.images,
        "source_images": args.images // 2,
        "target_images": args.images - args.images // 2,
        "pixels": origin,
        "repeats": args.repeats,
        "cache_mib": median(loading["cache_bytes"]) / 2**20,
        "goal_ratio": GOAL_RATIO,
        "write_seconds": written,
        **loading_figures(loading, args.images),
    }
    figures["goal_met"] = figures["goal_met_warm"]
    print(f"  cache files: {figures['cache_mib']:.1f} MiB")
    if args.whole_runs:
        figures |= whole_run_figures(whole, args.whole_runs)
    result.write(figures)
    return 1 if args.strict and not figures["goal_met"] else 0


if __name__ == "__main__":
    sys.exit(main())

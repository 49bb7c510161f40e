"""Does ``dann-serve adapt`` win back what a shift took? Measured on streams with labels.

For each parent run and shifted stream: ``--captured`` images of the stream are written
as capture writes them (32x32 PNG files marked as the model's input, names that say
nothing of the label) and adapted to with ``dann-serve adapt``'s defaults; the parent
and the new run are then scored on other images of the same stream, which no step saw.
Labels are read for that score only.

"What the shift took" is the parent's accuracy on its own target's test split minus its
accuracy on the stream; "recovered" is the share of it the new run wins back. Goals:
at least half recovered; never more than 1 point below the parent on the stream.

    python -m bench.readapt --parent RUN [--parent RUN ...] [--stream mnist-rotated ...]
        [--captured 2000] [--steps N] [--method NAME] [--data-dir ../shared/data]

Needs ``../shared/data`` (MNIST test set, USPS). Each adaptation takes minutes here.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench._common import SHARED_DATA, Result, argument_parser
from dann_client.preprocessing import save_image
from dann_serve import data
from dann_serve.experiments.adaptation import adapt_run
from dann_serve.training.evaluation import accuracy, restore_model
from dann_serve.training.rundir import read_json

STREAMS = ("mnist-rotated", "mnist-texture", "usps-texture", "digits-rotated", "digits-texture")


def stream_splits(name: str, data_dir: Path, captured: int) -> tuple[np.ndarray, data.Split]:
    """``captured`` images of the data set ``name``'s train split to capture, drawn at
    random, and its test split to score on."""
    domain = data.load_domain(name, data_dir)
    order = np.random.default_rng(0).permutation(len(domain.train))[:captured]
    return domain.train.images[order], domain.test


def write_capture(images: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        save_image(image, folder / f"captured-{index:05d}.png")
    return folder


def measure(
    parent: Path,
    stream: str,
    data_dir: Path,
    captured: int,
    steps: int | None,
    method: str | None,
    work: Path,
) -> dict:
    """One parent adapted to one stream's captured images, both scored on the rest."""
    images, held = stream_splits(stream, data_dir, captured)
    folder = write_capture(images, work / f"{parent.name}-{stream}-capture")
    out = work / f"{parent.name}-{stream}-adapted"
    started = time.monotonic()
    summary = adapt_run(parent, folder, out, steps=steps, show_progress=False, method=method)
    wall = time.monotonic() - started
    before = accuracy(restore_model(parent), held)
    after = accuracy(restore_model(out), held)
    home = read_json(parent / "summary.json")["target_test_accuracy"]
    took = home - before
    return {
        "parent": str(parent),
        "stream": stream,
        "parent_on_own_target": home,
        "parent_on_stream": before,
        "adapted_on_stream": after,
        "shift_took_points": 100 * took,
        "recovered_share": (after - before) / took if took > 0 else None,
        "method": summary["adaptation"]["candidates"][-1]["description"],
        "chosen": summary["adaptation"]["chosen"],
        "scores": {row["name"]: row["scores"] for row in summary["adaptation"]["candidates"]},
        "train_seconds": summary["adaptation"]["train_seconds"],
        "wall_seconds": round(wall, 1),
    }


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--parent", action="append", type=Path, required=True)
    parser.add_argument("--stream", action="append", choices=STREAMS, default=None)
    parser.add_argument("--captured", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=None, help="default: adapt's own")
    parser.add_argument("--method", default=None, help="default: adapt's own")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = Result("readapt", args.json)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-readapt-") as scratch:
        for parent in args.parent:
            for stream in args.stream or STREAMS:
                row = measure(
                    parent,
                    stream,
                    args.data_dir,
                    args.captured,
                    args.steps,
                    args.method,
                    Path(scratch),
                )
                rows.append(row)
                share = row["recovered_share"]
                print(
                    f"{parent.name} {stream}: own target {100 * row['parent_on_own_target']:.1f}, "
                    f"parent {100 * row['parent_on_stream']:.1f} -> adapted "
                    f"{100 * row['adapted_on_stream']:.1f} (chose {row['chosen']}; recovered "
                    f"{'n/a' if share is None else f'{100 * share:.0f}%'}; "
                    f"{row['wall_seconds']:.0f} s)",
                    flush=True,
                )
    result.write({"rows": rows})


if __name__ == "__main__":
    main()

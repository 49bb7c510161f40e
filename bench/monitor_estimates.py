"""How far the live monitor's figures can be trusted: its accuracy estimate and drift
verdict on streams whose labels are known, for exported models.

Each run is exported (as ``dann-serve export`` does, reference included) and its
SavedModel answers every stream; the monitor's own :class:`~dann_serve.drift.window.
Window` then reads the answers exactly as the server's does. Labels are read for one
purpose only: the true accuracy printed beside each estimate.

- **Estimates**: each stream, shuffled, is cut into disjoint windows of 1,000 images
  (at most five); every window's estimate, its reliability verdict and the true accuracy
  of that window's images are one row. The acceptance figures are over the rows the
  monitor calls reliable.
- **False alarms**: windows of in-distribution traffic, the adapted-to target images
  the reference did not sample, drawn at random (``--null-windows`` per run). The pool
  holds a few thousand images, so these windows overlap: each is a fair draw, the
  count of flagged ones is noisier than for independent windows.
- **Detection**: on each shifted stream, whether a window of its first 500 images is
  flagged, and how many of its images a window already full of in-distribution traffic
  takes in before it is flagged.

    python -m bench.monitor_estimates --run RUN [--run RUN ...] [--data-dir ../shared/data]

Needs ``../shared/data`` (MNIST test set, USPS): the streams are built from it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from scipy import ndimage

from bench._common import SHARED_DATA, Result, argument_parser
from dann_serve import data
from dann_serve.drift import reference as drift_reference
from dann_serve.drift import shift
from dann_serve.drift.window import CAPACITY, Window
from dann_serve.export import export_run
from dann_serve.export.checks import exported_probabilities
from dann_serve.training.rundir import load_config

WINDOWS_PER_STREAM = 5
SHIFT_STEP = 50
# The shifted streams by data set name (the model's own source and target left out),
# and MNIST thickened (a 2x2 grey dilation), made here.
SHIFTED = (
    "mnist",
    "mnist-rotated",
    "mnist-tight",
    "mnist-texture",
    "usps-texture",
    "digits",
    "digits-rotated",
    "digits-tight",
    "digits-texture",
)


@dataclass(frozen=True)
class Stream:
    """Images with labels, and whether they come from another distribution than the
    adapted-to one (None: not clear-cut, left out of the drift figures).

    No black-on-white stream: the network's first layers (``DarkBackground``) turn a
    light background dark, so inverted images reach it as the originals do (same
    answers, nothing for a monitor of the answers to see, and nothing lost)."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    shifted: bool | None


def _thickened(images: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.grey_dilation(i, size=(2, 2, 1)) for i in images])


def _whole(name: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A shifted stream's images: the test split, with the train split too where the
    test split alone fills no window (``digits``: 500 test images)."""
    domain = data.load_domain(name, data_dir)
    if len(domain.test) >= CAPACITY:
        return domain.test.images, domain.test.labels
    both = (domain.train, domain.test)
    return np.concatenate([s.images for s in both]), np.concatenate([s.labels for s in both])


def streams(run: Path, data_dir: Path) -> list[Stream]:
    """The labelled streams a model of ``run`` is shown, the in-distribution one first:
    the adapted-to target images the reference did not sample, or where it sampled them
    all, the target's test split."""
    config = load_config(run)
    target = data.load_domain(config.target, data_dir, role="target")
    kept = drift_reference.sample_indices(
        len(target.train), drift_reference.MAX_TARGET_IMAGES, config.seed
    )
    rest = np.setdiff1d(np.arange(len(target.train)), kept)
    if len(rest) >= CAPACITY:
        found = [
            Stream(
                f"{config.target}, not in the reference",
                target.train.images[rest],
                target.train.labels[rest],
                shifted=False,
            ),
            Stream(
                f"{config.target} test split",
                target.test.images,
                target.test.labels,
                shifted=None,  # the same domain's other writers: counts for neither
            ),
        ]
    else:
        test = target.test
        found = [Stream(f"{config.target} test split", test.images, test.labels, shifted=False)]
    source = data.load_domain(config.source, data_dir).test
    found.append(
        Stream(f"{config.source} test (ATC fitted on it)", source.images, source.labels, True)
    )
    for name in SHIFTED:
        if name not in (config.target, config.source):
            found.append(Stream(name, *_whole(name, data_dir), shifted=True))
    mnist = data.load_domain("mnist", data_dir).test
    found.append(Stream("mnist thickened", _thickened(mnist.images), mnist.labels, True))
    return found


def _export(run: Path, models: Path) -> tuple[object, drift_reference.Reference]:
    result = export_run(run, models, "m")
    saved = tf.saved_model.load(str(result.path))
    return saved, drift_reference.load(result.path / drift_reference.VERSION_PATH)


@dataclass(frozen=True)
class Monitor:
    """A version's reference and the drift test's significance: what makes windows."""

    reference: drift_reference.Reference
    significance: float

    def window(self, rows: np.ndarray | None = None) -> Window:
        window = Window(self.reference, significance=self.significance)
        if rows is not None:
            window.add(rows)
        return window


def estimate_rows(
    ref: Monitor, stream: Stream, probabilities: np.ndarray, rng: np.random.Generator
) -> list[dict]:
    """One row per disjoint window of the shuffled stream: estimate against truth."""
    order = rng.permutation(len(probabilities))
    rows = []
    for start in range(0, len(order) - CAPACITY + 1, CAPACITY)[:WINDOWS_PER_STREAM]:
        chosen = order[start : start + CAPACITY]
        snapshot = ref.window(probabilities[chosen]).snapshot()
        evidence = snapshot.evidence
        assert evidence is not None  # a referenced window of CAPACITY rows
        truth = float(np.mean(probabilities[chosen].argmax(1) == stream.labels[chosen]))
        rows.append(
            {
                "stream": stream.name,
                "shifted": stream.shifted,
                "true": truth,
                "estimate": snapshot.estimated_accuracy,
                "reliable": snapshot.estimate_reliable,
                "because": list(snapshot.unreliable_because),
                "flagged": snapshot.drift.shifted,
                "p_value": snapshot.drift.p_value,
                "mean_confidence": snapshot.mean_confidence,
                "gap_change": evidence.calibration_gap - evidence.source_gap,
                "share_shift": evidence.share_shift,
                "max_ks": max(snapshot.drift.statistics),
            }
        )
    return rows


def false_alarms(ref: Monitor, pool: np.ndarray, windows: int, rng: np.random.Generator) -> dict:
    """How many of ``windows`` random windows of in-distribution answers are flagged."""
    if len(pool) < 2 * CAPACITY:  # windows drawn from it would be nearly the same images
        return {"windows": 0, "window_images": CAPACITY, "flagged": 0}
    size = CAPACITY
    flagged = sum(
        ref.window(pool[rng.choice(len(pool), size, replace=False)]).snapshot().drift.shifted
        for _ in range(windows)
    )
    return {"windows": windows, "window_images": size, "flagged": int(flagged)}


def detection(
    ref: Monitor, pool: np.ndarray, shifted: np.ndarray, rng: np.random.Generator
) -> dict:
    """Flagged at 500 images from a fresh window; images until flagged after a window
    full of in-distribution answers (None: not within 1,000)."""
    shifted = shifted[rng.permutation(len(shifted))]
    fresh = ref.window(shifted[:500]).snapshot().drift
    window = ref.window(pool[rng.choice(len(pool), min(CAPACITY, len(pool)), replace=False)])
    until = None
    for seen in range(SHIFT_STEP, min(len(shifted), 1000) + 1, SHIFT_STEP):
        window.add(shifted[seen - SHIFT_STEP : seen])
        if window.snapshot().drift.shifted:
            until = seen
            break
    return {"fresh_500_flagged": fresh.shifted, "fresh_500_p": fresh.p_value, "after_full": until}


def measure_run(
    run: Path, data_dir: Path, null_windows: int, models: Path, significance: float
) -> dict:
    """Every figure of one run's export."""
    saved, reference = _export(run, models)
    ref = Monitor(reference, significance)
    found = streams(run, data_dir)
    answers = {s.name: exported_probabilities(saved, s.images) for s in found}
    pool = answers[found[0].name]
    rng = np.random.default_rng(0)
    rows = [row for s in found for row in estimate_rows(ref, s, answers[s.name], rng)]
    detected = {s.name: detection(ref, pool, answers[s.name], rng) for s in found if s.shifted}
    return {
        "run": str(run),
        "source_accuracy": reference.source_accuracy,
        "estimates": rows,
        "false_alarms": false_alarms(ref, pool, null_windows, rng),
        "detection": detected,
    }


def summary(runs: list[dict]) -> dict:
    """The acceptance figures over every run."""
    rows = [(run, row) for run in runs for row in run["estimates"]]
    trusted = [abs(r["estimate"] - r["true"]) for _, r in rows if r["reliable"]]
    healthy_but_wrong = [
        r
        for run, r in rows
        if r["reliable"]
        and r["estimate"] >= run["source_accuracy"] - 0.10
        and r["true"] <= run["source_accuracy"] - 0.20
    ]
    alarms = [run["false_alarms"] for run in runs]
    missed = [
        name
        for run in runs
        for name, found in run["detection"].items()
        if not found["fresh_500_flagged"]
        or found["after_full"] is None
        or found["after_full"] > 500
    ]
    return {
        "windows": len(rows),
        "reliable_windows": len(trusted),
        "reliable_mae_points": 100 * float(np.mean(trusted)) if trusted else None,
        "reliable_worst_points": 100 * float(np.max(trusted)) if trusted else None,
        "reliable_and_healthy_but_20_points_down": len(healthy_but_wrong),
        "null_windows": sum(a["windows"] for a in alarms),
        "null_flagged": sum(a["flagged"] for a in alarms),
        "shifted_streams_not_flagged_within_500": missed,
    }


def print_table(runs: list[dict]) -> None:
    for run in runs:
        print(f"\n{run['run']}  (source accuracy {100 * run['source_accuracy']:.1f})")
        by_stream: dict[str, list[dict]] = {}
        for row in run["estimates"]:
            by_stream.setdefault(row["stream"], []).append(row)
        for name, rows in by_stream.items():
            true = 100 * np.mean([r["true"] for r in rows])
            est = 100 * np.mean([r["estimate"] for r in rows])
            reliable = sum(r["reliable"] for r in rows)
            flagged = sum(r["flagged"] for r in rows)
            found = run["detection"].get(name)
            seen = "" if found is None else f" | after full: {found['after_full']}"
            print(
                f"  {name:52s} true {true:5.1f} est {est:5.1f} "
                f"reliable {reliable}/{len(rows)} flagged {flagged}/{len(rows)}{seen}"
            )
        alarms = run["false_alarms"]
        print(f"  false alarms: {alarms['flagged']}/{alarms['windows']}")


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--null-windows", type=int, default=250)
    parser.add_argument("--significance", type=float, default=shift.SIGNIFICANCE)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (args.data_dir / "mnist").is_dir():
        raise SystemExit(f"{args.data_dir}: no mnist folder; the streams are built from it")
    result = Result("monitor_estimates", args.json)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as models:
        for run in args.run:
            runs.append(
                measure_run(run, args.data_dir, args.null_windows, Path(models), args.significance)
            )
            print_table(runs[-1:])
    figures = {"significance": args.significance, "summary": summary(runs), "runs": runs}
    print(figures["summary"])
    result.write(figures)


if __name__ == "__main__":
    main()

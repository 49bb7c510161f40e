"""Adaptation reports: source-only and DANN, identical settings, several seeds.

The two modes of a seed share every option but ``mode``; target labels enter only
through the final target test accuracy each run reports, never a choice of step,
checkpoint or hyper-parameter. Finished runs are reused, so a long report can be
interrupted and started again. :mod:`dann_serve.experiments.results_page` turns the finished runs
into ``docs/RESULTS.md``; this module needs TensorFlow only to train.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import zlib
from collections.abc import Iterable
from pathlib import Path

from dann_serve.config import MODE_LABELS, MODES, TrainConfig

UNKNOWN_TARGET_ACCURACY = (
    "target accuracy unknown: the target has no labels (give --target-test DIR to measure it)"
)


def _part(spec: str) -> str:
    """A data set's name as it is; a folder (a path, as a run records it) as its last
    component and a hash of the whole path, so that two folders of one name stay apart."""
    if "/" not in spec and "\\" not in spec:
        return spec
    return f"{Path(spec).name}-{zlib.crc32(spec.encode()):08x}"


def pair_slug(source: str, target: str) -> str:
    """The pair's name in file names: ``<source>-<target>``, folders shortened."""
    return f"{_part(source)}-{_part(target)}"


def pair_dir(out: Path, source: str, target: str) -> Path:
    """Where the runs of one pair live under ``out``."""
    return Path(out) / pair_slug(source, target)


def run_dir(out: Path, source: str, target: str, mode: str, seed: int) -> Path:
    """The run directory of one mode and seed of a pair."""
    return pair_dir(out, source, target) / f"{mode}-seed{seed}"


def run_pair(base: TrainConfig, seeds: Iterable[int], out: Path, show_progress: bool) -> list[dict]:
    """Train (or reuse) both modes for every seed; one summary per run."""
    from dann_serve.training.loop import train_run  # TensorFlow: only when training

    summaries = []
    for seed in seeds:
        for mode in MODES:
            config = dataclasses.replace(base, seed=seed, mode=mode)
            directory = run_dir(out, base.source, base.target, mode, seed)
            finished = directory / "summary.json"
            if finished.exists():
                summaries.append(json.loads(finished.read_text()))
                continue
            resume = (directory / "config.json").exists()
            summaries.append(
                train_run(config, directory, resume=resume, show_progress=show_progress)
            )
    return summaries


def spread(values: list[float]) -> float:
    """Sample standard deviation over seeds (0 for a single seed)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def mean_std(values: list[float]) -> str:
    """``mean ± std`` in percent, one decimal."""
    return f"{100 * statistics.mean(values):.1f} ± {100 * spread(values):.1f}"


def target_known(summaries: list[dict]) -> bool:
    """Whether every run measured its target accuracy (the target had test labels)."""
    return all(summary.get("target_test_accuracy") is not None for summary in summaries)


def pair_table(summaries: list[dict]) -> tuple[str, dict]:
    """Markdown rows per seed plus the mean ± std line, and the figures behind them.

    Without target labels no accuracy of the target is shown or averaged: the rows
    give per seed and mode what is known (:func:`label_free_table`), the text ends
    in :data:`UNKNOWN_TARGET_ACCURACY` and every target figure is None.
    """
    if not target_known(summaries):
        return label_free_table(summaries)
    by_seed: dict[int, dict[str, float]] = {}
    for summary in summaries:
        by_seed.setdefault(summary["seed"], {})[summary["mode"]] = summary["target_test_accuracy"]
    lines = ["| seed | source-only | DANN | DANN - source-only |", "|---|---|---|---|"]
    for seed, result in sorted(by_seed.items()):
        gain = result["dann"] - result["source-only"]
        lines.append(
            f"| {seed} | {100 * result['source-only']:.1f} | "
            f"{100 * result['dann']:.1f} | {100 * gain:+.1f} |"
        )
    source_only = [r["source-only"] for r in by_seed.values()]
    dann = [r["dann"] for r in by_seed.values()]
    gains = [d - s for d, s in zip(dann, source_only, strict=True)]
    lines.append(
        f"| mean ± std | {mean_std(source_only)} | {mean_std(dann)} | "
        f"{100 * statistics.mean(gains):+.1f} |"
    )
    figures = {
        "seeds": sorted(by_seed),
        "target_labels": True,
        "source_only_mean": statistics.mean(source_only),
        "source_only_std": spread(source_only),
        "dann_mean": statistics.mean(dann),
        "dann_std": spread(dann),
        "gain_mean": statistics.mean(gains),
        "gain_std": spread(gains),
    }
    return "\n".join(lines), figures


TARGET_FIGURES = (
    "source_only_mean",
    "source_only_std",
    "dann_mean",
    "dann_std",
    "gain_mean",
    "gain_std",
)
LABEL_FREE_HEADER = (
    "| seed | mode | source test accuracy | domain accuracy | target images called each "
    "digit 0-9 (%) | largest predicted class |"
)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _label_free_row(summary: dict) -> str:
    """One run's row: what its summary.json knows without target labels."""
    shares = (summary.get("target_label_free") or {}).get("predicted_classes")
    if shares:
        classes = " ".join(f"{100 * share:.0f}" for share in shares)
        top = max(range(len(shares)), key=lambda digit: shares[digit])
        largest = f"{top} ({100 * shares[top]:.1f}%)"
    else:  # a run from before summary.json recorded them
        classes = largest = "-"
    mode = MODE_LABELS.get(summary["mode"], summary["mode"])
    return (
        f"| {summary['seed']} | {mode} | {_percent(summary.get('source_test_accuracy'))} | "
        f"{_percent(summary.get('domain_accuracy'))} | {classes} | {largest} |"
    )


def label_free_table(summaries: list[dict]) -> tuple[str, dict]:
    """The table of runs whose target has no labels: per seed and mode the source test
    accuracy, the domain accuracy and the shares of predicted classes on the target,
    then the plain sentence that the target accuracy is unknown. No mean is taken of
    an unknown; the figures' target entries are None."""
    order = {mode: index for index, mode in enumerate(("source-only", "dann"))}
    ranked = sorted(summaries, key=lambda s: (s["seed"], order.get(s["mode"], len(order))))
    lines = [LABEL_FREE_HEADER, "|---|---|---|---|---|---|"]
    lines += [_label_free_row(summary) for summary in ranked]
    figures = {
        "seeds": sorted({summary["seed"] for summary in summaries}),
        "target_labels": False,
        **dict.fromkeys(TARGET_FIGURES),
    }
    return "\n".join(lines) + f"\n\n{UNKNOWN_TARGET_ACCURACY}.", figures

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
from collections.abc import Iterable
from pathlib import Path

from dann_serve.config import MODES, TrainConfig


def pair_dir(out: Path, source: str, target: str) -> Path:
    """Where the runs of one pair live under ``out``."""
    return Path(out) / f"{source}-{target}"


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


def pair_table(summaries: list[dict]) -> tuple[str, dict]:
    """Markdown rows per seed plus the mean ± std line, and the figures behind them."""
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
        "source_only_mean": statistics.mean(source_only),
        "source_only_std": spread(source_only),
        "dann_mean": statistics.mean(dann),
        "dann_std": spread(dann),
        "gain_mean": statistics.mean(gains),
        "gain_std": spread(gains),
    }
    return "\n".join(lines), figures

"""A pair's training curves over seeds: both methods in one PNG of ``docs/RESULTS.md``.

Drawn from the ``metrics.csv`` rows of every finished seed; one run's own curves
are :func:`dann_serve.training.plots.plot_curves`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dann_serve.experiments.compare import BASELINE, kind_label
from dann_serve.training.plots import pyplot, save_figure

PAIR_PANELS = (
    ("target_accuracy", "target test accuracy"),
    ("source_accuracy", "source test accuracy"),
    ("domain_accuracy", "domain accuracy (0.5: confused)"),
)


def plot_pair_curves(curves: dict[str, list[list[dict]]], path: Path, title: str) -> None:
    """One PNG comparing the methods of a pair: for each metric, the mean over seeds
    as a line and the lowest to highest seed as a band.

    ``curves`` maps a method to the metrics rows of each of its seeds; only the steps
    every seed of a method logged are drawn, so seeds line up step for step. A metric
    some seed could not measure (empty cells: no target labels) is not drawn for that
    method, and a panel left without a line says that it is unknown.
    """
    figure, axes = pyplot().subplots(1, len(PAIR_PANELS), figsize=(4.2 * len(PAIR_PANELS), 3.6))
    drawn = set()
    for method, runs in curves.items():
        if not runs:
            continue
        by_step = [{int(row["step"]): row for row in rows} for rows in runs]
        common = sorted(set.intersection(*(set(steps) for steps in by_step)))
        for panel, (name, ylabel) in zip(axes, PAIR_PANELS, strict=True):
            cells = [[steps[step][name] for step in common] for steps in by_step]
            if not any(cell in ("", None) for row in cells for cell in row):
                values = np.array([[float(cell) for cell in row] for row in cells])
                _draw_method(panel, method, common, values)
                drawn.add(name)
            panel.set_xlabel("step")
            panel.set_ylabel(ylabel)
            panel.grid(alpha=0.3)
    for panel, (name, _) in zip(axes, PAIR_PANELS, strict=True):
        if curves and name not in drawn:
            panel.text(
                0.5, 0.5, "unknown: no labels", ha="center", va="center", transform=panel.transAxes
            )
    shown = [panel for panel, (name, _) in zip(axes, PAIR_PANELS, strict=True) if name in drawn]
    (shown or [axes[0]])[0].legend(loc="lower right")
    figure.suptitle(title)
    save_figure(figure, path)


def _draw_method(panel, method: str, steps: list[int], values: np.ndarray) -> None:
    """One method's mean over seeds (line) and lowest to highest seed (band, when several):
    source-only in blue, the adapting method in red."""
    colour = "tab:blue" if method == BASELINE else "tab:red"
    seeds = f"{len(values)} seed{'s' if len(values) > 1 else ''}"
    panel.plot(
        steps,
        values.mean(axis=0),
        color=colour,
        label=f"{kind_label(method)} ({seeds})",
    )
    if len(values) > 1:
        panel.fill_between(
            steps,
            values.min(axis=0),
            values.max(axis=0),
            color=colour,
            alpha=0.2,
            linewidth=0,
        )

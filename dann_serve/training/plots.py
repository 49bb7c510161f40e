"""Training curves as PNG files, drawn from the rows of metrics.csv: one run's
(:func:`plot_curves`) or both modes of a pair over seeds (:func:`plot_pair_curves`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(rows: list[dict], run_dir: Path) -> None:
    """accuracy.png and losses.png from the metrics rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([int(row["step"]) for row in rows])

    def series(name: str) -> np.ndarray:
        return np.array([float(row[name]) for row in rows])

    for filename, names, ylabel in (
        ("accuracy.png", ("source_accuracy", "target_accuracy", "domain_accuracy"), "accuracy"),
        ("losses.png", ("label_loss", "domain_loss", "lambda"), "value"),
    ):
        figure, axes = plt.subplots(figsize=(6, 4))
        for name in names:
            start = 1 if name.endswith("loss") else 0  # step 0 has no training loss
            axes.plot(steps[start:], series(name)[start:], label=name.replace("_", " "))
        axes.set_xlabel("step")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(run_dir / filename, dpi=100)
        plt.close(figure)


MODE_COLOURS = {"source-only": "tab:blue", "dann": "tab:red"}
MODE_LABELS = {"source-only": "source-only", "dann": "DANN"}
PAIR_PANELS = (
    ("target_accuracy", "target test accuracy"),
    ("source_accuracy", "source test accuracy"),
    ("domain_accuracy", "domain accuracy (0.5: confused)"),
)


def plot_pair_curves(curves: dict[str, list[list[dict]]], path: Path, title: str) -> None:
    """One PNG comparing the modes of a pair: for each metric, the mean over seeds
    as a line and the lowest to highest seed as a band.

    ``curves`` maps a mode to the metrics rows of each of its seeds; only the steps
    every seed of a mode logged are drawn, so seeds line up step for step.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PAIR_PANELS), figsize=(4.2 * len(PAIR_PANELS), 3.6))
    for mode, runs in curves.items():
        if not runs:
            continue
        by_step = [{int(row["step"]): row for row in rows} for rows in runs]
        common = sorted(set.intersection(*(set(steps) for steps in by_step)))
        for panel, (name, ylabel) in zip(axes, PAIR_PANELS, strict=True):
            values = np.array([[float(steps[step][name]) for step in common] for steps in by_step])
            colour = MODE_COLOURS.get(mode)
            seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
            panel.plot(
                common,
                values.mean(axis=0),
                color=colour,
                label=f"{MODE_LABELS.get(mode, mode)} ({seeds})",
            )
            if len(runs) > 1:
                panel.fill_between(
                    common,
                    values.min(axis=0),
                    values.max(axis=0),
                    color=colour,
                    alpha=0.2,
                    linewidth=0,
                )
            panel.set_xlabel("step")
            panel.set_ylabel(ylabel)
            panel.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)

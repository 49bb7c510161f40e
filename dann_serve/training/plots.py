"""One run's training curves as PNG files, drawn from the rows of metrics.csv.

Also the two steps every figure of the project shares: matplotlib without a display
(:func:`pyplot`) and a figure written to a file (:func:`save_figure`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: files only, no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path) -> None:
    """Lay ``figure`` out, write it to ``path`` (folders created) and free it."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot().close(figure)


def plot_curves(rows: list[dict], run_dir: Path) -> None:
    """accuracy.png and losses.png from the metrics rows."""
    plt = pyplot()
    steps = np.array([int(row["step"]) for row in rows])

    def series(name: str) -> np.ndarray:
        return np.array([float(row[name]) for row in rows])

    for filename, names, ylabel in (
        ("accuracy.png", ("source_accuracy", "target_accuracy", "domain_accuracy"), "accuracy"),
        ("losses.png", ("label_loss", "domain_loss", "lambda"), "value"),
    ):
        figure, axes = plt.subplots(figsize=(6, 4))
        for name in names:
            if all(row[name] == "" for row in rows):  # no target labels: unknown, not drawn
                axes.plot([], [], " ", label=f"{name.replace('_', ' ')} unknown (no labels)")
                continue
            start = 1 if name.endswith("loss") else 0  # step 0 has no training loss
            axes.plot(steps[start:], series(name)[start:], label=name.replace("_", " "))
        axes.set_xlabel("step")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
        save_figure(figure, run_dir / filename)

"""Source and target features before and after adaptation, as a 2-D picture.

"Before" is the source-only run of a seed, "after" the adapting method's (DANN's)
run of the same seed: the same network, data and schedules, the adaptation the only
difference. Both models read the same images, a fixed random subset of the source
and target test splits; each model's ``.features`` output (the representation both
heads read) is projected to 2-D by PCA (an SVD of the centred features) and, when
asked, t-SNE. Points are coloured by domain and drawn as their digit, so a reader
sees both whether the domains overlap and whether the same digits meet. The target
labels only draw the glyphs; nothing is fitted to them. Images without a label (a
target folder nobody labelled) are drawn as dots, never as a digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dann_serve.data import UNKNOWN_LABEL, Split
from dann_serve.training.plots import pyplot, save_figure

DOMAIN_COLOURS = ("tab:blue", "tab:orange")  # source, target
PCA_DIMENSIONS_FOR_TSNE = 50


@dataclass(frozen=True)
class Sample:
    """The images a feature picture shows: ``count`` per domain at most, fixed by ``seed``."""

    source: Split
    target: Split

    @classmethod
    def draw(cls, source: Split, target: Split, count: int, seed: int = 0) -> Sample:
        rng = np.random.default_rng(seed)

        def subset(split: Split) -> Split:
            chosen = np.sort(rng.choice(len(split), size=min(count, len(split)), replace=False))
            return Split(split.images[chosen], split.labels[chosen])

        return cls(subset(source), subset(target))

    @property
    def images(self) -> np.ndarray:
        return np.concatenate([self.source.images, self.target.images])

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate([self.source.labels, self.target.labels])

    @property
    def domains(self) -> np.ndarray:
        return np.repeat([0, 1], [len(self.source), len(self.target)])

    @property
    def unlabelled(self) -> bool:
        """Whether some image has no label (drawn as a dot)."""
        return bool(np.any(self.labels == UNKNOWN_LABEL))


def feature_vectors(model, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
    """``model.features`` of uint8 images, flattened to ``[N, D]`` float64."""
    from dann_serve.data.pipeline import to_unit_range

    parts = [
        model.features(to_unit_range(images[start : start + batch_size]), training=False).numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(parts).reshape(len(images), -1).astype(np.float64)


def pca(features: np.ndarray, dimensions: int = 2) -> np.ndarray:
    """The centred features on their first principal axes (numpy SVD).

    Each axis is signed so that its largest loading is positive, which keeps the
    picture from flipping between otherwise identical runs.
    """
    centred = features - features.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:dimensions]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return centred @ (axes * signs[:, None]).T


def single_threaded():
    """One BLAS/OpenMP thread for the projections.

    Their pools spin while they wait; with TensorFlow's threads or a training run on
    the same cores, that made a t-SNE of 80 points take 86 s instead of 0.2 s
    (measured on 2 busy cores). One thread is fast enough for a thousand points.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def perplexity(points: int) -> float:
    """t-SNE's usual 30, lowered for small samples (it must stay below the count)."""
    return float(min(30.0, max(2.0, (points - 1) / 3)))


def tsne(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """scikit-learn's t-SNE of the features, after PCA to 50 dimensions for speed."""
    from sklearn.manifold import TSNE

    reduced = pca(features, min(PCA_DIMENSIONS_FOR_TSNE, *features.shape))
    return TSNE(
        n_components=2,
        perplexity=perplexity(len(features)),
        init="pca",
        random_state=seed,
        max_iter=1000,
    ).fit_transform(reduced)


def _scatter(axis, points: np.ndarray, sample: Sample) -> None:
    domains, labels = sample.domains, sample.labels
    for domain, colour in enumerate(DOMAIN_COLOURS):
        for digit in range(10):
            chosen = (domains == domain) & (labels == digit)
            if chosen.any():
                axis.scatter(
                    points[chosen, 0],
                    points[chosen, 1],
                    marker=f"${digit}$",
                    s=28,
                    color=colour,
                    alpha=0.6,
                    linewidths=0,
                )
        unlabelled = (domains == domain) & (labels == UNKNOWN_LABEL)
        if unlabelled.any():
            axis.scatter(
                points[unlabelled, 0],
                points[unlabelled, 1],
                marker="o",
                s=10,
                color=colour,
                alpha=0.6,
                linewidths=0,
            )
    axis.set_xticks([])
    axis.set_yticks([])


def plot_feature_views(
    before,
    after,
    sample: Sample,
    path: Path,
    names: tuple[str, str],
    with_tsne: bool = True,
    seed: int = 0,
    adapted: str = "DANN",
) -> int:
    """PNG: a column per model (before = source-only, after = the ``adapted`` method), a
    row per projection.

    Returns the number of features per image (the width of ``.features``).
    """
    projections = [("PCA", pca)] + ([("t-SNE", lambda x: tsne(x, seed))] if with_tsne else [])
    columns = (("before: source-only", before), (f"after: {adapted}", after))
    width = 0
    figure, axes = pyplot().subplots(
        len(projections), 2, figsize=(10, 4.8 * len(projections)), squeeze=False
    )
    for column, (title, model) in enumerate(columns):
        features = feature_vectors(model, sample.images)
        width = features.shape[1]
        for row, (projection_name, project) in enumerate(projections):
            axis = axes[row, column]
            with single_threaded():
                _scatter(axis, project(features), sample)
            axis.set_title(f"{title}, {projection_name}")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", linestyle="", color=colour, label=f"{role} {name}")
        for role, name, colour in zip(("source", "target"), names, DOMAIN_COLOURS, strict=True)
    ]
    axes[0, 0].legend(handles=handles, loc="best")
    glyphs = "glyph = true digit" + ("; dot = no label" if sample.unlabelled else "")
    figure.suptitle(
        f"{names[0]} -> {names[1]}: features of {len(sample.source)} source and "
        f"{len(sample.target)} target test images ({glyphs})"
    )
    save_figure(figure, path)
    return width

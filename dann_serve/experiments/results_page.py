"""``dann-serve report``: a results document from whatever finished runs exist.

Reads the runs :mod:`dann_serve.experiments.collect` finds, draws each pair's figures
in ``results/`` beside the document (curves over seeds from ``metrics.csv``; features
before and after adaptation from the checkpoints of one seed) and splices the Markdown
of :mod:`dann_serve.experiments.markdown` between the document's markers. It trains
nothing, and a missing or unfinished run is listed, not fatal. The document is
``RESULTS.md`` in the runs folder unless named; ``make results`` names the
repository's ``docs/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from dann_serve import data
from dann_serve.experiments.collect import PairRuns, Run, collect_pair
from dann_serve.experiments.compare import kind_label
from dann_serve.experiments.curves import plot_pair_curves
from dann_serve.experiments.embedding import Sample, perplexity, plot_feature_views
from dann_serve.experiments.markdown import PairExtras, ReportError, render, write_document
from dann_serve.training.rundir import RunError

FEATURE_SAMPLE_SEED = 0
DOCUMENT = "RESULTS.md"  # the report's name in the runs folder, unless told otherwise
PREFERRED_FEATURE_SEED = 0


@dataclass
class ReportOutcome:
    document: Path
    pairs: list[PairRuns]
    figures: list[Path] = field(default_factory=list)


class Domains:
    """Data sets loaded once per report (``fonts`` and ``mnist`` serve two pairs each)."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self.loaded: dict[tuple, object] = {}

    def get(self, run: Run, role: str):
        """The ``role`` ("source" or "target") domain of ``run`` as it was trained on (a
        data set or a folder, tested where the run was tested), or the error message
        that stopped it from loading."""
        options = run.options
        folder = str(self.data_dir) if self.data_dir is not None else options.get("data_dir")
        key = (options[role], folder, options.get(f"{role}_test"), options["skip_unreadable"])
        if key not in self.loaded:
            try:
                self.loaded[key] = data.load_domain(
                    key[0], folder, key[2], role=role, skip_unreadable=key[3]
                )
            except data.DatasetError as error:
                self.loaded[key] = str(error)
        return self.loaded[key]


def _reference_run(pair: PairRuns) -> Run | None:
    complete = [run for method in pair.compared for run in pair.finished(method)]
    finished = complete or pair.all_finished()
    return finished[0] if finished else None


def data_lines(pair: PairRuns, domains: Domains) -> list[str]:
    """Sizes from the runs' config.json, and each data set's note on how it was split."""
    run = _reference_run(pair)
    if run is None:
        return []
    lines = []
    sizes = cast(dict, run.config).get("data", {})
    for role, name, use in (
        ("source", pair.source, "labelled"),
        ("target", pair.target, "unlabelled"),
    ):
        counts = sizes.get(role, {})
        line = f"{role} `{name}`"
        if "train" in counts:
            line += f": {counts['train']:,} {use} training images, {counts['test']:,} test images"
            if role == "target":
                line += (
                    " (the reported accuracy)"
                    if counts.get("test_labelled", True)
                    else " without labels (the target accuracy is unknown)"
                )
        note = counts.get("note")
        if note is None:  # runs trained before config.json recorded the note
            domain = domains.get(run, role)
            note = (
                f"(Its note could not be read here: {domain})"
                if isinstance(domain, str)
                else domain.note
            )
        note = (note or "").strip() or "The data set's own train/test split."
        lines.append(f"{line}. {note}{'' if note.endswith(('.', ')')) else '.'}")
    return lines


def draw_curves(pair: PairRuns, figures: Path) -> Path | None:
    if not pair.complete_seeds:
        return None
    path = figures / f"{pair.slug}-curves.png"
    curves = {method: [run.metrics() for run in pair.finished(method)] for method in pair.compared}
    plot_pair_curves(curves, path, f"{pair.name}: mean over seeds {pair.complete_seeds}")
    return path


def draw_features(
    pair: PairRuns, figures: Path, domains: Domains, count: int, with_tsne: bool
) -> tuple[Path | None, str]:
    """The feature picture of one seed and the caption (or why there is none)."""
    if count <= 0 or not pair.complete_seeds:
        return None, ""
    from dann_serve.training.evaluation import restore_model  # TensorFlow: only to draw

    seeds = pair.complete_seeds
    seed = PREFERRED_FEATURE_SEED if PREFERRED_FEATURE_SEED in seeds else seeds[0]
    before, after = (pair.runs[method, seed] for method in pair.compared)
    loaded = [domains.get(before, role) for role in ("source", "target")]
    problems = [item for item in loaded if isinstance(item, str)]
    if problems:
        return None, f"not drawn: {problems[0]}"
    try:
        models = restore_model(before.path), restore_model(after.path)
    except RunError as error:
        return None, f"not drawn: {error}"
    sample = Sample.draw(loaded[0].test, loaded[1].test, count, FEATURE_SAMPLE_SEED)
    path = figures / f"{pair.slug}-features.png"
    names = (_short(pair.source), _short(pair.target))
    adapted = kind_label(pair.adapted)
    width = plot_feature_views(*models, sample, path, names, with_tsne, adapted=adapted)
    projections = (
        "PCA on top (the two largest principal axes of the centred features, numpy SVD), "
        f"t-SNE below (scikit-learn, perplexity {perplexity(len(sample.labels)):g}, after PCA "
        "to 50 dimensions)"
        if with_tsne
        else "PCA (the two largest principal axes of the centred features)"
    )
    caption = (
        f"Seed {seed}: the source-only run (before) and the {adapted} run (after) read the same "
        f"{len(sample.source)} source and {len(sample.target)} target test images, drawn at "
        f"random once (numpy seed {FEATURE_SAMPLE_SEED}). Each column projects its own "
        f"model's `.features` output, the {width:,} features both heads read: {projections}. "
        "Colour: domain; glyph: the image's true digit (target labels only draw the glyphs; "
        "no projection is fitted to them)."
    )
    if sample.unlabelled:
        caption += " The target has no labels: its images are drawn as dots."
    return path, caption


def _short(spec: str) -> str:
    """A data set's name, or a folder's last component (runs record folders in full)."""
    return Path(spec).name if "/" in spec else spec


def generate_report(
    runs: Path,
    document: Path | None,
    pairs: Sequence[tuple[str, str]],
    seeds: Sequence[int],
    figures: Path | None = None,
    data_dir: Path | None = None,
    feature_images: int = 500,
    with_tsne: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> ReportOutcome:
    """Write ``document`` (only its generated block; by default :data:`DOCUMENT` in
    ``runs``, so that a report never lands in a checkout's docs/ unasked) and the
    figures of every pair."""
    runs = Path(runs)
    document = Path(document) if document is not None else runs / DOCUMENT
    if not runs.is_dir():
        raise ReportError(
            f"{runs}: no such folder of runs (train pairs into it first with "
            f"dann-serve compare --out {runs})"
        )
    figures = Path(figures) if figures is not None else document.parent / "results"
    domains = Domains(data_dir)
    try:
        outcome = ReportOutcome(document, [collect_pair(runs, s, t, seeds) for s, t in pairs])
    except RunError as error:
        raise ReportError(str(error)) from None
    extras = {}
    for pair in outcome.pairs:
        curves = draw_curves(pair, figures)
        features, caption = draw_features(pair, figures, domains, feature_images, with_tsne)
        extras[pair.slug] = PairExtras(data_lines(pair, domains), curves, features, caption)
        outcome.figures += [path for path in (curves, features) if path is not None]
        missing = len(pair.missing())
        log(
            f"{pair.name}: {len(pair.complete_seeds)} of {len(pair.seeds)} seeds complete"
            + (f", {missing} runs missing or unfinished" if missing else "")
        )
    write_document(document, render(outcome.pairs, extras, document, runs))
    return outcome

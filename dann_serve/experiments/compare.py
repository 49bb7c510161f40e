"""Adaptation reports: source-only and an adapting method (DANN unless ``--method``
names another), identical settings, several seeds, and optionally the run
``train --select`` keeps for each seed.

The two runs of a seed share every option but ``method``; target labels enter only
through the final target test accuracy each run reports, never a choice of step,
checkpoint or hyper-parameter. With ``--select`` a seed also gets
``select-seed<N>/``, whose candidates of the same methods are that seed's two runs
(trained once, shared), so the three columns compare like with like. Finished runs
are reused, so a long report can be interrupted and started again.
:mod:`dann_serve.experiments.results_page` turns the finished runs into
``docs/RESULTS.md``; this module needs TensorFlow only to train.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from dann_serve.config import DEFAULT_CRITERION, TrainConfig
from dann_serve.training.methods import method_label
from dann_serve.training.methods.source_only import SourceOnly

SELECT = "select"  # the run kind of ``train --select``: ``<pair>/select-seed<N>/``
BASELINE = SourceOnly.name  # what every adapting method is measured against
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


def run_dir(out: Path, source: str, target: str, kind: str, seed: int) -> Path:
    """The run directory of one method (or :data:`SELECT`) and seed of a pair."""
    return pair_dir(out, source, target) / f"{kind}-seed{seed}"


def kind_label(kind: str) -> str:
    """How tables print a run kind: a method's label, or ``--select``."""
    return "--select" if kind == SELECT else method_label(kind)


def compared(base: TrainConfig) -> tuple[str, str]:
    """The methods compare trains for every seed: source-only, then ``base``'s."""
    if base.method == BASELINE:
        raise ValueError(f"compare sets an adapting --method against {BASELINE}: choose another")
    return BASELINE, base.method


def run_pair(base: TrainConfig, seeds: Iterable[int], out: Path, show_progress: bool) -> list[dict]:
    """Train (or reuse) both methods for every seed; one summary per run."""
    from dann_serve.training.loop import train_or_reuse  # TensorFlow: only when training

    return [
        train_or_reuse(
            dataclasses.replace(base, seed=seed, method=method),
            run_dir(out, base.source, base.target, method, seed),
            show_progress,
        )
        for seed in seeds
        for method in compared(base)
    ]


def run_selections(
    base: TrainConfig,
    seeds: Iterable[int],
    out: Path,
    criterion: str = DEFAULT_CRITERION,
    show_progress: bool = True,
) -> list[dict]:
    """``train --select`` for every seed into ``select-seed<N>/``; one summary each.

    The candidates of the methods :func:`run_pair` trains are placed at that seed's
    ``<method>-seed<N>/``, so the runs it trained (or trains here, if
    absent) are scored as they are, never trained twice. A finished selection is
    reused as it is (with the criterion it was made with); an interrupted one resumes.
    """
    from dann_serve.experiments.selection import SELECTION, select_run
    from dann_serve.training.distribute import placement
    from dann_serve.training.loop import FINISHED, STARTED, run_state

    place = placement(base)
    summaries = []
    for seed in seeds:
        directory = run_dir(out, base.source, base.target, SELECT, seed)
        state = run_state(directory, place, started=SELECTION)
        if state == FINISHED:
            if place.chief:  # the other workers of a multi-worker run report nothing
                summaries.append(json.loads((directory / "summary.json").read_text()))
            continue
        locations = {
            method: run_dir(out, base.source, base.target, method, seed)
            for method in compared(base)
        }
        summaries.append(
            select_run(
                dataclasses.replace(base, seed=seed),
                directory,
                resume=state == STARTED,
                criterion=criterion,
                show_progress=show_progress,
                locations=locations,
            )
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


def adapted_method(summaries: Iterable[dict]) -> str:
    """The method ``summaries`` adapt with (all but source-only's), DANN without one."""
    return next((s["method"] for s in summaries if s["method"] != BASELINE), TrainConfig.method)


def pair_table(summaries: list[dict], selections: Sequence[dict] = ()) -> tuple[str, dict]:
    """Markdown rows per seed plus the mean ± std line, and the figures behind them.

    ``summaries`` are source-only's and one adapting method's runs. ``selections``
    (summaries of ``train --select`` runs, one per seed of ``summaries``) add a
    ``--select`` column, its gain over source-only and the candidate it kept; without
    them the table is the two methods alone. Without target labels no accuracy of the
    target is shown or averaged: the rows give per seed and run what is known
    (:func:`label_free_table`), the text ends in :data:`UNKNOWN_TARGET_ACCURACY` and
    every target figure is None.
    """
    if not target_known([*summaries, *selections]):
        return label_free_table([*summaries, *({**s, "kind": SELECT} for s in selections)])
    method = adapted_method(summaries)
    by_seed: dict[int, dict] = {}
    for summary in summaries:
        by_seed.setdefault(summary["seed"], {})[summary["method"]] = summary["target_test_accuracy"]
    for summary in selections:
        by_seed.setdefault(summary["seed"], {}).update(
            {SELECT: summary["target_test_accuracy"], "chosen": summary["selection"]["chosen"]}
        )
    adapted = (method, SELECT) if selections else (method,)
    header = ["seed", kind_label(BASELINE)]
    for kind in adapted:
        header += [kind_label(kind), f"{kind_label(kind)} - {kind_label(BASELINE)}"]
    header += ["chosen"] if selections else []
    lines = [table_head(header)]
    columns = {k: [by_seed[seed][k] for seed in sorted(by_seed)] for k in (BASELINE, *adapted)}
    gains = {
        kind: [a - s for a, s in zip(columns[kind], columns[BASELINE], strict=True)]
        for kind in adapted
    }
    for index, seed in enumerate(sorted(by_seed)):
        cells = [str(seed), f"{100 * columns[BASELINE][index]:.1f}"]
        for kind in adapted:
            cells += [f"{100 * columns[kind][index]:.1f}", f"{100 * gains[kind][index]:+.1f}"]
        lines.append(table_row(cells + ([by_seed[seed]["chosen"]] if selections else [])))
    mean = ["mean ± std", mean_std(columns[BASELINE])]
    for kind in adapted:
        mean += [mean_std(columns[kind]), f"{100 * statistics.mean(gains[kind]):+.1f}"]
    lines.append(table_row(mean + ([""] if selections else [])))
    named = {"source_only": columns[BASELINE]}
    for kind in adapted:
        accuracy, gain = FIGURE_NAMES[SELECT if kind == SELECT else ADAPTED]
        named.update({accuracy: columns[kind], gain: gains[kind]})
    figures = {"seeds": sorted(by_seed), "target_labels": True, **dict.fromkeys(TARGET_FIGURES)}
    for name, values in named.items():
        figures[f"{name}_mean"], figures[f"{name}_std"] = statistics.mean(values), spread(values)
    return "\n".join(lines), figures


def table_row(cells: list[str]) -> str:
    """One Markdown table row of ``cells`` (the report's tables are built from these)."""
    return "| " + " | ".join(cells) + " |"


def table_head(cells: list[str]) -> str:
    """A Markdown table's header row and the line under it."""
    return table_row(cells) + "\n" + "|---" * len(cells) + "|"


# The figures of pair_table: <name>_mean and <name>_std over seeds of the accuracy and
# of the gain over source-only of the adapting method and of --select (None when
# unknown or not run).
ADAPTED = "adapted"
FIGURE_NAMES = {ADAPTED: ("adapted", "gain"), SELECT: ("select", "select_gain")}
TARGET_FIGURES = tuple(
    f"{name}_{stat}"
    for name in ("source_only", *(n for names in FIGURE_NAMES.values() for n in names))
    for stat in ("mean", "std")
)
LABEL_FREE_HEADER = (
    "| seed | method | source test accuracy | domain accuracy | target images called each "
    "digit 0-9 (%) | largest predicted class |"
)


def percent(value: float | None) -> str:
    """An accuracy in percent, one decimal; "-" for an unknown one."""
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
    kind = summary.get("kind", summary["method"])
    shown = kind_label(kind)
    if kind == SELECT:
        shown += f" ({summary['selection']['chosen']})"
    return (
        f"| {summary['seed']} | {shown} | {percent(summary.get('source_test_accuracy'))} | "
        f"{percent(summary.get('domain_accuracy'))} | {classes} | {largest} |"
    )


def label_free_table(summaries: list[dict]) -> tuple[str, dict]:
    """The table of runs whose target has no labels: per seed and run (source-only, the
    adapting method, then ``--select`` with the candidate it kept) the source test
    accuracy, the domain accuracy and the shares of predicted classes on the target,
    then the plain sentence that the target accuracy is unknown. No mean is taken of an unknown; the
    figures' target entries are None."""
    order = {BASELINE: 0, SELECT: 2}  # the adapting method between them

    def place(summary: dict) -> tuple[int, int]:
        return summary["seed"], order.get(summary.get("kind", summary["method"]), 1)

    ranked = sorted(summaries, key=place)
    lines = [LABEL_FREE_HEADER, "|---|---|---|---|---|---|"]
    lines += [_label_free_row(summary) for summary in ranked]
    figures = {
        "seeds": sorted({summary["seed"] for summary in summaries}),
        "target_labels": False,
        **dict.fromkeys(TARGET_FIGURES),
    }
    return "\n".join(lines) + f"\n\n{UNKNOWN_TARGET_ACCURACY}.", figures

"""The Markdown of ``docs/RESULTS.md``: summary, per-pair sections, choices, markers.

Everything here is text from the runs :mod:`dann_serve.experiments.results_page` found and the
figures it drew; nothing is measured. The generated block sits between
:data:`BEGIN` and :data:`END` (markers of :mod:`dann_serve.files`); :func:`splice`
replaces only that block and keeps the rest of the document (the hand-written part)
byte for byte.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from dann_serve import files
from dann_serve.config import TrainConfig
from dann_serve.experiments.collect import PairRuns
from dann_serve.experiments.compare import (
    UNKNOWN_TARGET_ACCURACY,
    kind_label,
    pair_table,
    table_head,
    table_row,
)
from dann_serve.experiments.selection_page import agreement_section, candidates_section

BEGIN, END = files.markers("results")


class ReportError(Exception):
    """The report cannot be written as asked; the message says why."""


@dataclass
class PairExtras:
    """What a pair's section shows beside its table: data notes and figures."""

    data_lines: list[str] = field(default_factory=list)
    curves: Path | None = None
    features: Path | None = None
    features_note: str = ""


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _figures(pair: PairRuns) -> dict | None:
    if not pair.complete_seeds:
        return None
    return pair_table(pair.complete_summaries(), pair.complete_selections())[1]


def _shared(pair: PairRuns, option: str) -> str:
    values = sorted({run.options[option] for run in pair.all_finished()})
    return " / ".join(f"{value:,}" for value in values) if values else "-"


def _spread_cell(figures: dict, name: str, signed: bool = False) -> str:
    """``mean ± std`` of one of pair_table's figures, in percent ("-" when not run)."""
    mean = figures[f"{name}_mean"]
    if mean is None:
        return "-"
    shown = f"{100 * mean:+.1f}" if signed else _pct(mean)
    return f"{shown} ± {_pct(figures[f'{name}_std'])}"


def summary_table(pairs: Sequence[PairRuns]) -> str:
    """One row per pair; ``--select`` columns when any pair has selection runs."""
    selected = any(pair.selected for pair in pairs)
    # The adapting method heads its column; pairs compared with different ones name
    # theirs in each cell.
    methods = {pair.adapted for pair in pairs}
    named = len(methods) > 1
    header = ["pair", "source-only", "adapting method" if named else kind_label(*methods), "gain"]
    header += ["--select", "--select - source-only"] if selected else []
    lines = [table_head([*header, "seeds", "steps", "batch size"])]
    unknown = []
    for pair in pairs:
        figures = _figures(pair)
        if figures is None or not figures["target_labels"]:
            shown = "missing" if figures is None else "unknown"
            unknown += [] if figures is None else [pair.name]
            cells = [shown, shown, "-"]
            cells += [shown if pair.selected else "-", "-"] if selected else []
        else:
            cells = [
                _spread_cell(figures, "source_only"),
                _spread_cell(figures, "adapted")
                + (f" ({kind_label(pair.adapted)})" if named else ""),
                _spread_cell(figures, "gain", signed=True),
            ]
            if selected:
                cells += [
                    _spread_cell(figures, "select"),
                    _spread_cell(figures, "select_gain", signed=True),
                ]
        seeds = f"{len(pair.complete_seeds)} of {len(pair.seeds)}"
        shared = [_shared(pair, "steps"), _shared(pair, "batch_size")]
        lines.append(table_row([pair.name, *cells, seeds, *shared]))
    if unknown:
        lines.append(f"\n{', '.join(unknown)}: {UNKNOWN_TARGET_ACCURACY}.")
    return "\n".join(lines)


def _link(path: Path, document: Path) -> str:
    return Path(os.path.relpath(path, document.parent)).as_posix()


def missing_text(missing: list[tuple[str, str]]) -> str:
    """The runs a pair's figures leave out, grouped by why."""
    grouped: dict[str, list[str]] = {}
    for run, why in missing:
        grouped.setdefault(why, []).append(run)
    return (
        "Not reported: "
        + "; ".join(f"{', '.join(runs)}: {why}" for why, runs in grouped.items())
        + "."
    )


def _seed_tables(pair: PairRuns, runs: Path) -> list[str]:
    """The pair's table per seed and, with ``--select`` runs, their candidates; or how
    to train the runs when no seed is complete."""
    if pair.complete_seeds:
        table, figures = pair_table(pair.complete_summaries(), pair.complete_selections())
        selected = (
            "; `--select` is the run `dann-serve train --select` kept, chosen the candidate "
            "it kept (below)"
            if pair.selected
            else ""
        )
        heading = (
            "Target test accuracy (%) per seed, final averaged weights"
            if figures["target_labels"]
            else "What is known without target labels, per seed and method, final averaged "
            "weights: accuracy on the labelled source test split, the domain head's "
            "balanced accuracy, and the share of target test images given each digit"
        ) + f"{selected}:"
        return [f"{heading}\n\n{table}", candidates_section(pair)]
    seeds = ",".join(map(str, pair.seeds))
    method = f" --method {pair.adapted}" if pair.adapted != TrainConfig.method else ""
    return [
        f"No seed with {'its three runs' if pair.selected else 'both methods'} finished "
        f"under `{runs}/{pair.slug}/`. Train with "
        f"`dann-serve compare --source {pair.source} --target {pair.target}{method} "
        f"--seeds {seeds} --out {runs}{' --select' if pair.selected else ''}`."
    ]


def pair_section(pair: PairRuns, extras: PairExtras, document: Path, runs: Path) -> str:
    parts = [f"## {pair.name}"]
    missing = pair.missing()
    parts += _seed_tables(pair, runs)
    if missing:
        parts.append(missing_text(missing))
    if pair.other_seeds:
        parts.append(
            "Finished runs of seeds not asked for (not reported): "
            + ", ".join(map(str, pair.other_seeds))
            + "."
        )
    differences = pair.differences()
    if differences:
        listed = "; ".join(f"`{k}`: {', '.join(map(str, v))}" for k, v in differences.items())
        parts.append(f"**Warning: the runs of this pair do not share their settings** ({listed}).")
    if extras.data_lines:
        parts.append("Data:\n\n" + "\n".join(f"- {line}" for line in extras.data_lines))
    if extras.curves is not None:
        parts.append(
            f"![{pair.name} training curves]({_link(extras.curves, document)})\n\n"
            "Mean over the seeds of the table (line) and lowest to highest seed (band), "
            "evaluated every `--eval-every` steps on the whole test splits. Domain "
            "accuracy is the domain head's balanced accuracy; it trains under both methods, "
            "so it reads how separable the features are (0.5: not at all)."
            + (
                ""
                if pair.target_labelled
                else " The target test accuracy is not drawn: unknown, the target has no labels."
            )
        )
    if extras.features is not None:
        parts.append(
            f"![{pair.name} features before and after adaptation]"
            f"({_link(extras.features, document)})\n\n{extras.features_note}"
        )
    elif extras.features_note:
        parts.append(f"Feature picture: {extras.features_note}")
    return "\n\n".join(part for part in parts if part)


def _described(options: dict, names: Iterable[str], describe: Callable[[dict], str]) -> str:
    """``describe(options)``, marked * when any of ``names`` is not today's default."""
    defaults = dataclasses.asdict(TrainConfig())
    try:
        text = describe(options)
    except KeyError:  # an option this run predates or that was since removed
        return "-"
    # What `auto` resolves to depends on the machine the page is made on, not the run.
    changed = any(
        n in defaults and n != "precision" and options.get(n) != defaults[n] for n in names
    )
    return text + (" *" if changed else "")


def _shifts(options: dict) -> str:
    if not options["augment"]:
        return "none"
    ramp = ", grown in like lambda" if options["shift_ramp"] else ""
    return f"up to 10% of the side{ramp}"


CHOICES: tuple[tuple[str, tuple[str, ...], Callable[[dict], str]], ...] = (
    ("steps", ("steps",), lambda o: f"{o['steps']:,}"),
    (
        "batch",
        ("batch_size",),
        lambda o: (
            f"{o['batch_size']} ({o['batch_size'] // 2} source + {o['batch_size'] // 2} target)"
        ),
    ),
    ("architecture", ("arch",), lambda o: f"`{o['arch']}` (Ganin et al. 2016)"),
    ("optimiser", ("momentum",), lambda o: f"SGD, momentum {o['momentum']:g}"),
    (
        "learning rate",
        ("learning_rate", "lr_alpha", "lr_beta"),
        lambda o: f"mu_p = {o['learning_rate']:g} / (1 + {o['lr_alpha']:g} p)^{o['lr_beta']:g}",
    ),
    (
        "adaptation weight",
        ("lambda_max", "gamma"),
        lambda o: (
            f"lambda_p = {o['lambda_max']:g} (2 / (1 + exp(-{o['gamma']:g} p)) - 1) "
            "for the reversal (its method may cap it), 0 for source-only"
        ),
    ),
    ("batch norm", ("batch_norm",), lambda o: "yes" if o["batch_norm"] else "no"),
    ("grayscale in the graph", ("grayscale",), lambda o: "yes" if o["grayscale"] else "no"),
    (
        "light backgrounds inverted",
        ("dark_background",),
        lambda o: "yes" if o["dark_background"] else "no",
    ),
    ("random shifts", ("augment", "shift_ramp"), lambda o: _shifts(o)),
    ("weight decay", ("weight_decay",), lambda o: f"{o['weight_decay']:g}"),
    (
        "gradient clipping",
        ("clip_norm",),
        lambda o: f"global norm {o['clip_norm']:g}" if o["clip_norm"] else "none",
    ),
    (
        "weights reported",
        ("average_decay",),
        lambda o: f"moving average, decay {o['average_decay']:g}" if o["average_decay"] else "raw",
    ),
    ("evaluated every", ("eval_every",), lambda o: f"{o['eval_every']:,} steps"),
    (
        "information maximisation",
        ("information_weight",),
        lambda o: (
            f"weight {o['information_weight']:g}, ramped like lambda (not for source-only)"
            if o["information_weight"]
            else "none"
        ),
    ),
    ("compute dtype", ("precision",), lambda o: o["precision"]),
    (
        "devices",
        ("distribute", "cpu_replicas"),
        lambda o: "one" if o["distribute"] == "none" else o["distribute"],
    ),
)
# Where the data came from, which each pair's "Data:" list says already.
DATA_OPTIONS = {"source", "target", "source_test", "target_test", "skip_unreadable", "data_dir"}


def _raw(name: str) -> Callable[[dict], str]:
    """How an option without its own row is shown: its value as config.json has it."""
    return lambda options: str(options[name])


def choices_section(pairs: Sequence[PairRuns]) -> str:
    shown = [pair for pair in pairs if pair.all_finished()]
    parts = ["## How each choice was made"]
    if not shown:
        return "\n\n".join([*parts, "No finished run yet."])
    lines = [
        "| choice | " + " | ".join(p.name for p in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    covered = {name for _, names, _ in CHOICES for name in names}
    covered |= DATA_OPTIONS | {"method", "seed"}
    others = sorted(
        {option for pair in shown for run in pair.all_finished() for option in run.options}
        - covered
    )
    rows = [*CHOICES, *((f"`{name}`", (name,), _raw(name)) for name in others)]
    for label, names, describe in rows:
        cells = []
        for pair in shown:
            texts = sorted(
                {_described(run.options, names, describe) for run in pair.all_finished()}
            )
            cells.append(" / ".join(texts))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    versions = [
        sorted(
            {
                (cast(dict, r.config).get("versions") or {}).get("tensorflow", "?")
                for r in pair.all_finished()
            }
        )
        for pair in shown
    ]
    lines.append(
        "| seeds | "
        + " | ".join(", ".join(map(str, p.complete_seeds)) or "-" for p in shown)
        + " |"
    )
    lines.append("| TensorFlow | " + " | ".join(" / ".join(v) for v in versions) + " |")
    parts.append("\n".join(lines))
    parts.append(
        "Read from each run's `config.json`. `p` is the training progress, step / steps. "
        "A value marked * differs from the current default of `dann-serve train`; "
        "unmarked values are the defaults. The compute dtype is never marked: it is what "
        "`--precision` (by default `auto`) resolved to on the machine that trained.\n\n"
        "- **Same settings for both methods.** Source-only is the same network, data "
        "stream, batch composition, optimiser, schedules and seed with lambda held at 0; "
        "within a pair every run shares every option but method and seed (checked above "
        "from `config.json`; a pair that does not says so in a warning).\n"
        "- **Checkpoint.** Every figure is the final step's checkpoint of the averaged "
        "weights: no early stopping, no choice between checkpoints or steps.\n"
        "- **Schedules.** The learning rate and lambda follow p alone, fixed before "
        "training; they read no accuracy.\n"
        "- **No target label chose anything.** Target training images enter only "
        "through the domain loss, without labels. Target test labels are read only to "
        "compute the target accuracy logged in `metrics.csv` and reported here; no "
        "step, checkpoint, option or seed of these runs was selected with them. Seeds "
        "are the ones asked for, all reported."
    )
    return "\n\n".join(parts)


def render(
    pairs: Sequence[PairRuns], extras: dict[str, PairExtras], document: Path, runs: Path
) -> str:
    """The generated block (without the markers), ending in a newline."""
    finished = sum(len(pair.all_finished()) for pair in pairs)
    header = (
        f"<!-- Generated by `dann-serve report --runs {runs}` from {finished} finished "
        "runs; edits between the results markers are overwritten. -->"
    )
    summary = (
        "## Summary\n\nTarget test accuracy (%) of each run's final averaged weights, "
        "mean ± std (sample std) over the seeds whose source-only and adapting method's "
        "(DANN unless named) runs both finished; gain = adapting method - source-only per "
        "seed, then mean ± std."
    )
    if any(pair.selected for pair in pairs):
        summary += (
            " A pair with `--select` runs counts the seeds whose three runs finished; "
            "`--select - source-only` is paired per seed the same way."
        )
    summary += "\n\n" + summary_table(pairs)
    sections = [pair_section(p, extras.get(p.slug, PairExtras()), document, runs) for p in pairs]
    blocks = [header, summary, *sections, agreement_section(pairs), choices_section(pairs)]
    return "\n\n".join(block for block in blocks if block) + "\n"


def splice(document: str | None, block: str) -> str:
    """``document`` with the text between the markers replaced by ``block``.

    Without markers the block goes on top; the rest of the text is kept byte for byte.
    """
    if document is None:
        return f"{BEGIN}\n{block}{END}\n"
    if BEGIN not in document and END not in document:
        return f"{BEGIN}\n{block}{END}\n\n{document}"
    try:
        return files.splice(document, block, BEGIN, END)
    except files.MarkerError as error:
        raise ReportError(str(error)) from None


def write_document(path: Path, block: str) -> None:
    """Splice ``block`` into ``path`` (created if absent), replacing it atomically."""
    try:
        existing = files.read_document(path)
    except UnicodeDecodeError as error:
        raise ReportError(f"{path}: not UTF-8 text ({error})") from None
    files.write_document(path, splice(existing, block))

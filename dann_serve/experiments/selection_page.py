"""The ``--select`` part of ``docs/RESULTS.md``: each pair's candidates per seed, and how
well each label-free criterion ranked the candidates against the target labels.

Everything here is text from the ``summary.json`` of the selection runs
(:mod:`dann_serve.experiments.selection` records every candidate's scores and target
accuracy there), so the report trains and scores nothing and stays deterministic.
Target test labels enter only after the fact, to grade the criteria; no selection
read them.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from dann_serve.config import CRITERIA
from dann_serve.experiments.collect import PairRuns
from dann_serve.experiments.compare import SELECT, percent, table_head, table_row
from dann_serve.experiments.selection import started_close, top_scored

AFTER_THE_FACT = "target accuracy (measured after the fact, not used)"


def selections_of(pair: PairRuns) -> list[tuple[int, dict]]:
    """``(seed, the "selection" entry of its summary)`` for every complete seed."""
    if not pair.selected:
        return []
    return [(run.seed, cast(dict, run.summary)["selection"]) for run in pair.finished(SELECT)]


def criteria_of(selections: Sequence[dict]) -> list[str]:
    """The criteria any candidate was scored by: the known ones in their usual order,
    then any other (a criterion added since) by name."""
    found = {name for s in selections for row in s["candidates"] for name in row["scores"]}
    return [name for name in CRITERIA if name in found] + sorted(found - set(CRITERIA))


def candidates_section(pair: PairRuns) -> str:
    """The candidate methods of each seed's selection: every criterion's score, which one
    was kept, and each candidate's target accuracy (read from its run, never scored)."""
    found = selections_of(pair)
    if not found:
        return ""
    criteria = criteria_of([selection for _, selection in found])
    header = ["seed", "candidate", *(f"`{name}`" for name in criteria), "chosen", AFTER_THE_FACT]
    lines = [table_head(header)]
    described: dict[str, str] = {}
    for seed, selection in found:
        for row in selection["candidates"]:
            described.setdefault(row["name"], row["description"])
            scores = [
                f"{row['scores'][name]:+.4f}" if name in row["scores"] else "-" for name in criteria
            ]
            chosen = f"yes, by `{selection['criterion']}`" if row["chosen"] else ""
            if row.get("passed_over"):
                chosen = f"passed over: class shift {row['class_shift']:.3f}"
            cells = [str(seed), row["name"], *scores, chosen, percent(row["target_test_accuracy"])]
            lines.append(table_row(cells))
    listing = "\n".join(f"- `{name}`: {text}" for name, text in described.items())
    intro = (
        "Candidates of `--select` per seed, each trained on the same data and seed "
        "(`compare --select` takes the seed's two runs above as those candidates, without "
        "training them again):\n\n"
        f"{listing}\n\nLabel-free scores (higher is better; none reads a target label), "
        "the candidate kept and the criterion that chose it, or the guard's veto (a "
        "candidate whose predicted class shares stand further from the source's than "
        "source-only's do, by more than the tolerance, is passed over). The last column is the "
        "candidate's target test accuracy, measured after the fact for this report: no "
        "score or choice used it."
    )
    return f"{intro}\n\n{_separability_note(found)}" + "\n".join(lines)


def _separability_note(found: list[tuple[int, dict]]) -> str:
    """Which candidate set each seed trained, and the measure that decided it."""

    def reading(seed: int, selection: dict) -> str:
        close = "close" if started_close(selection) else "far"
        return f"seed {seed} {selection['separability']:.3f} ({close})"

    readings = ", ".join(reading(seed, selection) for seed, selection in found)
    return (
        "How far apart the domains start, read on each seed's source-only candidate: the "
        "balanced accuracy of a logistic domain classifier on its features of the two "
        "training sets, held out (0.5: indistinguishable; no label read). Below "
        f"{found[0][1]['close_below']} the domains count as close and the selection "
        f"tries `dann-weak` in place of `cdan`: {readings}.\n\n"
    )


@dataclass
class Grade:
    """How one criterion's ranking of the candidates agreed with the target labels."""

    criterion: str
    graded: int = 0  # selection runs with every candidate scored and its accuracy known
    chose: int = 0  # selection runs in which this criterion made the choice
    best_picks: int = 0  # graded runs whose top-scored candidate was the most accurate
    regrets: list[float] = field(default_factory=list)  # best accuracy - the pick's
    correlations: list[float] = field(default_factory=list)  # Spearman, where defined


def grade_criteria(selections: Sequence[dict]) -> list[Grade]:
    """Each criterion against the target labels over ``selections`` (the "selection"
    entries of summaries): its Spearman rank correlation with the candidates' target
    accuracies, whether its top pick (ties as the selection breaks them) was the most
    accurate candidate, and the accuracy lost if not. A run whose scores or accuracies
    all tie has no rank correlation; it still counts for the pick and the regret."""
    from scipy.stats import spearmanr

    grades = []
    for criterion in criteria_of(selections):
        grade = Grade(criterion)
        for selection in selections:
            rows = selection["candidates"]
            grade.chose += selection["criterion"] == criterion
            accuracies = [row["target_test_accuracy"] for row in rows]
            if None in accuracies or any(criterion not in row["scores"] for row in rows):
                continue
            scores = [row["scores"][criterion] for row in rows]
            grade.graded += 1
            regret = max(accuracies) - accuracies[top_scored(rows, criterion)]
            grade.regrets.append(regret)
            grade.best_picks += regret == 0
            if len(set(scores)) > 1 and len(set(accuracies)) > 1:
                grade.correlations.append(float(spearmanr(scores, accuracies).statistic))
        grades.append(grade)
    return grades


def agreement_section(pairs: Sequence[PairRuns]) -> str:
    """The criteria graded over every selection run of the report ("" without any)."""
    selections = [selection for pair in pairs for _, selection in selections_of(pair)]
    if not selections:
        return ""
    grades = grade_criteria(selections)
    parts = [
        "## How well each criterion ranks the candidates",
        f"Over the {len(selections)} `--select` runs above, every candidate's label-free "
        "scores against its target test accuracy, read after the fact (no selection used "
        "it): the Spearman rank correlation over the candidates of a run (+1: the order of "
        "the labels; mean over runs), how often the criterion's top-scored candidate is "
        "the most accurate one, and the mean regret, the points of target accuracy lost "
        "against that most accurate candidate.",
    ]
    if not any(grade.graded for grade in grades):
        return "\n\n".join([*parts, "No selection run has target labels: nothing to grade."])
    header = ["criterion", "chose in", "runs graded", "mean Spearman correlation"]
    lines = [table_head([*header, "top pick is the best", "mean regret (points)"])]
    for grade in grades:
        rho = "-"
        if grade.correlations:
            rho = f"{statistics.mean(grade.correlations):+.2f}"
            if len(grade.correlations) < grade.graded:
                rho += f" (over {len(grade.correlations)} of {grade.graded} runs: the others tie)"
        graded = bool(grade.graded)
        cells = [
            f"`{grade.criterion}`",
            f"{grade.chose} of {len(selections)}",
            str(grade.graded),
            rho,
            f"{grade.best_picks} of {grade.graded}" if graded else "-",
            f"{100 * statistics.mean(grade.regrets):.1f}" if graded else "-",
        ]
        lines.append(table_row(cells))
    return "\n\n".join([*parts, "\n".join(lines)])

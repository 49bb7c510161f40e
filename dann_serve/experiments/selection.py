"""``dann-serve train --select``: train a few candidates, keep the one a label-free
criterion ranks first.

Adaptation helps on some domain pairs and hurts on others, and the user cannot
tell which without target labels. So the selection trains four candidates, each an
adaptation method (:mod:`dann_serve.training.methods`), on the same data and seed
(source-only always among them, so that adaptation that hurts can lose), scores
each with a criterion that reads no target label (:mod:`criteria`), and makes the
top-scored candidate the run: its config, metrics, curves and checkpoints are copied
into the run directory, whose ``summary.json`` adds the table of candidates, their
scores and the choice.

Which variants compete depends on how far apart the domains start. The source-only
candidate is trained first, and a linear classifier on its features tells the domains
apart (:func:`criteria.domain_separability`). Far apart, alignment is what carries the
source's classes over, and the conditioned head of CDAN is tried; already close, the
full reversal mostly shakes features that need no moving (``docs/RESULTS.md``), so a
weak one is tried instead. Either way four runs are trained. A far target in colour
is a third case: digits inverted out of coloured, textured backgrounds are
what no printed or scanned source shows, so every adapting candidate trains on the
source blended onto random textures (:mod:`dann_serve.training.methods.textured_source`).
Untextured candidates beside them were 10 to 16 points worse on the colour-texture
pairs and still ranked first by entropy (confident, and wrong), so they do not
compete. Three runs. Where the domains start close, colour or not, the near set is
tried: the source's features already cover the target.

The criterion ranks; a guard vetoes. A candidate whose predicted class shares on the
target move further from the source's class shares than source-only's do, by more
than :data:`CLASS_SHIFT_TOLERANCE`, is passed over (:func:`criteria.class_shift`):
on a target far enough that every prediction is a guess, the most confident
candidate can be the one that piles the target onto a few classes, and entropy
alone would keep it. When every adapting candidate is passed over, source-only is
kept. The guard assumes the target's class shares are not far from the source's
(source-only's own shift is its yardstick); it is applied here only, not to
``adapt``, whose captured images may hold any mix of classes.

Each candidate is an ordinary run under ``candidates/<name>/`` (or wherever the
caller puts it, as ``compare`` does), so an interrupted selection resumes candidate
by candidate; ``selection.json``, written first, remembers what was asked, and then
the measure that chose the candidates.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dann_serve.config import (
    CHEAP_CRITERIA,
    CLASS_SHIFT,
    CRITERIA,
    DEFAULT_CRITERION,
    TrainConfig,
)
from dann_serve.data import is_colour
from dann_serve.files import write_json
from dann_serve.training.methods import get_method
from dann_serve.training.methods.source_only import SourceOnly
from dann_serve.training.rundir import (
    CHECKPOINTS,
    RunError,
    load_config,
    read_json,
    saved_config,
)

if TYPE_CHECKING:
    from dann_serve.training.distribute import Placement

SELECTION = "selection.json"
CANDIDATES_DIR = "candidates"
# Copied from the chosen candidate: what makes a run directory a run.
RUN_FILES = ("config.json", "metrics.csv", "accuracy.png", "losses.png")

FAR_CANDIDATES = ("source-only", "dann", "cdan", "dann-cw")
NEAR_CANDIDATES = ("source-only", "dann", "dann-weak", "dann-cw")
COLOUR_CANDIDATES = ("source-only", "dann-texture", "cdan-texture")
CANDIDATES = ("source-only", "dann", "cdan", "dann-weak", "dann-cw", "dann-texture", "cdan-texture")
"""Every method any set may train, by name (source-only first in each)."""

CLASS_SHIFT_TOLERANCE = 0.02
"""How much further than source-only's (total variation) a candidate's predicted class
shares may stand from the source's before the guard passes it over: twenty times the
most any candidate stood further on the visible pairs, 0.001 (``docs/RESULTS.md``)."""

NEAR_SEPARABILITY = 0.95
"""Domains whose source-only features a linear classifier tells apart with a balanced
accuracy below this start "close": 0.90 to 0.91 on usps <-> mnist, 0.97 and above on
the printed -> handwritten pairs (``docs/RESULTS.md``)."""


def candidates_for(close: bool, colour: bool = False) -> tuple[str, ...]:
    """The candidate methods for domains that start close, or far apart, the target in
    colour or not."""
    if close:
        return NEAR_CANDIDATES
    return COLOUR_CANDIDATES if colour else FAR_CANDIDATES


def candidate_configs(
    base: TrainConfig, close: bool = False, colour: bool = False
) -> list[tuple[str, TrainConfig]]:
    """Every candidate's full options: the base run's, with the candidate's method."""
    names = candidates_for(close, colour)
    return [(name, dataclasses.replace(base, method=name)) for name in names]


def started_close(selection: dict) -> bool:
    """Whether a finished selection (a summary's ``selection``) read its domains as close."""
    return selection["separability"] < selection["close_below"]


def started_colour(selection: dict) -> bool:
    """Whether a finished selection read its target as in colour."""
    return bool(selection.get("colour", False))


def passed_over(rows: list[dict], guarded: bool = True) -> list[bool]:
    """For each candidate row, whether the guard vetoes it: its ``class_shift`` exceeds
    the first row's (source-only: what is kept when nothing else may be) by more than
    :data:`CLASS_SHIFT_TOLERANCE`. Rows scored before the guard existed carry no shift
    and pass; with ``guarded`` False (``adapt``) every row passes."""
    fallback = rows[0].get(CLASS_SHIFT)
    return [
        guarded
        and i > 0
        and fallback is not None
        and row.get(CLASS_SHIFT) is not None
        and row[CLASS_SHIFT] > fallback + CLASS_SHIFT_TOLERANCE
        for i, row in enumerate(rows)
    ]


def marked(rows: list[dict], best: int, guarded: bool = True) -> list[dict]:
    """The candidate rows as a summary lists them: each marked kept or not, and passed
    over by the guard or not."""
    vetoed = passed_over(rows, guarded)
    return [{**row, "chosen": i == best, "passed_over": vetoed[i]} for i, row in enumerate(rows)]


def top_scored(rows: list[dict], criterion: str, guarded: bool = True) -> int:
    """The index of the candidate row ``criterion`` ranks first (its ``scores``) among
    those the guard lets through (:func:`passed_over`); ties go to the earlier
    candidate (source-only first)."""
    vetoed = passed_over(rows, guarded)
    allowed = [i for i in range(len(rows)) if not vetoed[i]]
    return max(allowed, key=lambda i: (rows[i]["scores"][criterion], -i))


def select_run(
    base: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    criterion: str = DEFAULT_CRITERION,
    show_progress: bool = True,
    locations: dict[str, Path] | None = None,
) -> dict:
    """Train (or continue) the candidates, score them, make the best one ``run_dir``'s
    run; returns its summary. ``locations`` may place candidates elsewhere than
    ``run_dir/candidates/<name>`` (compare keeps source-only and DANN where its other
    runs are)."""
    from dann_serve.training.distribute import placement  # TensorFlow: only when training
    from dann_serve.training.loop import train_or_reuse, worker_summary

    run_dir = Path(run_dir)
    # Under --distribute multi-worker every worker trains each candidate with the chief;
    # only the chief plans, measures, scores and writes (the others would race it for
    # the files) and tells the others which candidates follow source-only.
    place = placement(base)
    plan = _plan(base, run_dir, resume, criterion, locations or {}, write=place.chief)
    base = saved_config(plan["base"], run_dir / SELECTION)

    def train(name: str, config: TrainConfig) -> tuple[str, Path, dict]:
        where = run_dir / plan["locations"][name]
        return name, where, train_or_reuse(config, where, show_progress)

    source_only, *_ = candidate_configs(base)  # first in every set
    trained = [train(*source_only)]
    close = _agreed(place, lambda: _close(plan, run_dir), "measure the domains' separability")
    colour = not close and _agreed(
        place, lambda: _colour(plan, run_dir), "read whether the target is in colour"
    )
    trained += [train(*pair) for pair in candidate_configs(base, close, colour)[1:]]
    if not place.chief:
        return worker_summary(trained[-1][2]["step"], place)
    rows = [scored(name, where, summary, plan["criterion"]) for name, where, summary in trained]
    return _adopt(run_dir, plan, rows)


def _close(plan: dict, run_dir: Path) -> bool:
    """Whether the domains start close, by the source-only candidate's separability:
    measured once and kept in selection.json, so that a resumed selection trains the
    same candidates."""
    if plan["separability"] is None:
        from dann_serve.experiments.criteria import domain_separability

        baseline = run_dir / plan["locations"][SourceOnly.name]
        plan["separability"] = domain_separability(baseline)
        # Only the measure is added: the file keeps the options it was started with.
        stored = read_json(run_dir / SELECTION)
        write_json(run_dir / SELECTION, {**stored, "separability": plan["separability"]})
    return plan["separability"] < NEAR_SEPARABILITY


def _colour(plan: dict, run_dir: Path) -> bool:
    """Whether the target's training images are in colour: read once and kept in
    selection.json, as the separability is, so that a resumed selection trains the
    same candidates."""
    if plan.get("colour") is None:
        from dann_serve.experiments.criteria import sample
        from dann_serve.training.loop import load_pair

        baseline = run_dir / plan["locations"][SourceOnly.name]
        _, target = load_pair(load_config(baseline))
        plan["colour"] = is_colour(sample(target.train).images)
        stored = read_json(run_dir / SELECTION)
        write_json(run_dir / SELECTION, {**stored, "colour": plan["colour"]})
    return plan["colour"]


def _agreed(place: Placement, decide: Callable[[], bool], what: str) -> bool:
    """``decide()`` on the chief, its answer on every worker. A failure on the chief
    fails every worker (they would otherwise wait for its answer forever)."""
    answer, failure = 0, None
    if place.chief:
        try:
            answer = int(decide())
        except Exception as error:
            answer, failure = -1, error
    answer = place.agree(answer)
    if failure is not None:
        raise failure
    if answer < 0:
        raise RunError(f"the chief failed to {what} on the source-only candidate: see its log")
    return bool(answer)


def _plan(
    base: TrainConfig,
    run_dir: Path,
    resume: bool,
    criterion: str,
    locations: dict[str, Path],
    write: bool = True,
) -> dict:
    """selection.json: read back when resuming, written before any training otherwise
    (by the chief: ``write`` False makes the same plan without touching the folder)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}: choose from {', '.join(CRITERIA)}")
    path = run_dir / SELECTION
    if resume:
        if not path.exists():
            raise RunError(f"{run_dir}: no selection to resume (no {SELECTION})")
        plan = read_json(path)
        plan["base"]["data_dir"] = base.data_dir or plan["base"].get("data_dir")
        # A plan saved before colour was read resumes the candidates it began with.
        if plan["separability"] is not None:
            plan.setdefault("colour", False)
        for name in CANDIDATES:
            plan["locations"].setdefault(name, os.path.join(CANDIDATES_DIR, name))
        return plan
    if write and (path.exists() or (run_dir / "config.json").exists()):
        raise RunError(
            f"{run_dir}: a run already exists there; pass --resume to continue it "
            "or choose another --out"
        )
    plan = {
        "criterion": criterion,
        "separability": None,  # measured once source-only has trained
        "colour": None,  # read then too, for far domains
        "base": dict(vars(base)),
        "locations": {
            name: _relative(locations.get(name, run_dir / CANDIDATES_DIR / name), run_dir)
            for name in CANDIDATES
        },
    }
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, plan)
    return plan


def _relative(path: Path, start: Path) -> str:
    """``path`` as seen from ``start``, so that a moved experiment folder still resumes."""
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def scored(
    name: str, where: Path, summary: dict, criterion: str, description: str | None = None
) -> dict:
    """The candidate's row: what it is (``description``, by default its method's), its
    scores (cached in ``criteria.json``: the cheap criteria always, for the report, and
    the one that chooses), the guard's class shift, and its target accuracy for the
    report (read from its summary, never by a score)."""
    from dann_serve.experiments.criteria import score_run

    cache = where / "criteria.json"
    scores = json.loads(cache.read_text()) if cache.exists() else {}
    wanted = dict.fromkeys((*CHEAP_CRITERIA, criterion, CLASS_SHIFT))
    missing = tuple(wanted_name for wanted_name in wanted if wanted_name not in scores)
    if missing:
        scores.update(score_run(where, missing))
        write_json(cache, scores)
    shift = scores.pop(CLASS_SHIFT)
    return {
        "name": name,
        "description": description or get_method(name).description,
        "path": str(where),
        "scores": scores,
        CLASS_SHIFT: shift,
        "target_test_accuracy": summary.get("target_test_accuracy"),
        "source_test_accuracy": summary.get("source_test_accuracy"),
    }


def adopt_best(
    run_dir: Path, rows: list[dict], criterion: str, guarded: bool = True
) -> tuple[int, dict]:
    """Copy the candidate row ``criterion`` ranks first (among those the guard lets
    through, when ``guarded``) into ``run_dir`` (ties go to the earlier row); its index
    and its summary, which the caller completes and writes last, as the mark of a
    finished run."""
    best = top_scored(rows, criterion, guarded)
    chosen = Path(rows[best]["path"])
    for name in RUN_FILES:
        if (chosen / name).exists():
            shutil.copy2(chosen / name, run_dir / name)
    if (run_dir / CHECKPOINTS).exists():
        shutil.rmtree(run_dir / CHECKPOINTS)
    shutil.copytree(chosen / CHECKPOINTS, run_dir / CHECKPOINTS)
    return best, read_json(chosen / "summary.json")


def _adopt(run_dir: Path, plan: dict, rows: list[dict]) -> dict:
    """Make the top-scored candidate ``run_dir``'s run, its summary.json adding the
    table of candidates (source-only first, so that it wins ties)."""
    criterion = plan["criterion"]
    best, chosen = adopt_best(run_dir, rows, criterion)
    summary = {
        **chosen,
        "selection": {
            "criterion": criterion,
            "separability": plan.get("separability"),
            "close_below": NEAR_SEPARABILITY,
            "colour": plan.get("colour"),
            "class_shift_tolerance": CLASS_SHIFT_TOLERANCE,
            "chosen": rows[best]["name"],
            "candidates": marked(rows, best),
        },
    }
    write_json(run_dir / "summary.json", summary)
    return summary

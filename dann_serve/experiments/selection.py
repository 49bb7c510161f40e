"""``dann-serve train --select``: train a few candidates, keep the one a label-free
criterion ranks first.

Adaptation helps on some domain pairs and hurts on others, and the user cannot
tell which without target labels. So the selection trains a small fixed set of
candidates on the same data and seed (source-only always among them, so that
adaptation that hurts can lose), scores each with a criterion that reads no target
label (:mod:`criteria`), and makes the top-scored candidate the run: its config,
metrics, curves and checkpoints are copied into the run directory, whose
``summary.json`` adds the table of candidates, their scores and the choice.

Each candidate is an ordinary run under ``candidates/<name>/`` (or wherever the
caller puts it, as ``compare`` does), so an interrupted selection resumes candidate
by candidate; ``selection.json``, written first, remembers what was asked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dann_serve.config import CHEAP_CRITERIA, CRITERIA, DEFAULT_CRITERION, TrainConfig
from dann_serve.files import write_json
from dann_serve.training.rundir import CHECKPOINTS, RunError, read_json

SELECTION = "selection.json"
CANDIDATES_DIR = "candidates"
# Copied from the chosen candidate: what makes a run directory a run.
RUN_FILES = ("config.json", "metrics.csv", "accuracy.png", "losses.png")


@dataclass(frozen=True)
class Candidate:
    """One setting the selection tries: the options it changes from the base run."""

    name: str
    options: dict
    description: str


CANDIDATES = (
    Candidate("source-only", {"mode": "source-only"}, "no adaptation (lambda = 0)"),
    Candidate("dann", {"mode": "dann"}, "DANN with the defaults"),
    Candidate(
        "cdan",
        {"mode": "dann", "conditional": True},
        "CDAN+E: the domain head conditioned on the class predictions",
    ),
    Candidate(
        "dann-cw",
        {"mode": "dann", "class_weighting": True},
        "DANN with class-weighted alignment",
    ),
)


def candidate_configs(base: TrainConfig) -> list[tuple[Candidate, TrainConfig]]:
    """Every candidate's full options: the base run's, but for what the candidate sets."""
    return [(c, dataclasses.replace(base, **c.options)) for c in CANDIDATES]


def mode_candidates() -> dict[str, str]:
    """The candidates that are a plain run of one mode (they set the mode and nothing
    else), by mode: ``compare --select`` has trained those runs already and passes
    them as ``locations``, so that no run is trained twice."""
    return {c.options["mode"]: c.name for c in CANDIDATES if set(c.options) == {"mode"}}


def top_scored(rows: list[dict], criterion: str) -> int:
    """The index of the candidate row ``criterion`` ranks first (its ``scores``); ties
    go to the earlier candidate (source-only first)."""
    return max(range(len(rows)), key=lambda i: (rows[i]["scores"][criterion], -i))


def select_run(
    base: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    criterion: str = DEFAULT_CRITERION,
    show_progress: bool = True,
    locations: dict[str, Path] | None = None,
) -> dict:
    """Train (or continue) every candidate, score them, make the best one ``run_dir``'s
    run; returns its summary. ``locations`` may place candidates elsewhere than
    ``run_dir/candidates/<name>`` (compare keeps source-only and DANN where its other
    runs are)."""
    from dann_serve.training.distribute import placement  # TensorFlow: only when training
    from dann_serve.training.loop import train_or_reuse, worker_summary

    run_dir = Path(run_dir)
    # Under --distribute multi-worker every worker trains each candidate with the chief;
    # only the chief plans, scores and writes (the others would race it for the files).
    place = placement(base)
    plan = _plan(base, run_dir, resume, criterion, locations or {}, write=place.chief)
    rows, step = [], 0
    for candidate, config in candidate_configs(TrainConfig.from_dict(plan["base"])):
        where = run_dir / plan["locations"][candidate.name]
        summary = train_or_reuse(config, where, show_progress)
        step = summary["step"]
        if place.chief:
            rows.append(_scored(candidate, where, summary, plan["criterion"]))
    if not place.chief:
        return worker_summary(step, place)
    return _adopt(run_dir, plan, rows)


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
        return plan
    if write and (path.exists() or (run_dir / "config.json").exists()):
        raise RunError(
            f"{run_dir}: a run already exists there; pass --resume to continue it "
            "or choose another --out"
        )
    plan = {
        "criterion": criterion,
        "base": {**vars(base), "mode": "dann"},
        "locations": {
            c.name: _relative(locations.get(c.name, run_dir / CANDIDATES_DIR / c.name), run_dir)
            for c in CANDIDATES
        },
    }
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, plan)
    return plan


def _relative(path: Path, start: Path) -> str:
    """``path`` as seen from ``start``, so that a moved experiment folder still resumes."""
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def _scored(candidate: Candidate, where: Path, summary: dict, criterion: str) -> dict:
    """The candidate's row: its options, its scores (cached in ``criteria.json``: the
    cheap criteria always, for the report, and the one that chooses), and its target
    accuracy for the report (read from its summary, never by a score)."""
    from dann_serve.experiments.criteria import score_run

    cache = where / "criteria.json"
    scores = json.loads(cache.read_text()) if cache.exists() else {}
    wanted = dict.fromkeys((*CHEAP_CRITERIA, criterion))
    missing = tuple(name for name in wanted if name not in scores)
    if missing:
        scores.update(score_run(where, missing))
        write_json(cache, scores)
    return {
        "name": candidate.name,
        "description": candidate.description,
        "options": candidate.options,
        "path": str(where),
        "scores": scores,
        "target_test_accuracy": summary.get("target_test_accuracy"),
        "source_test_accuracy": summary.get("source_test_accuracy"),
    }


def _adopt(run_dir: Path, plan: dict, rows: list[dict]) -> dict:
    """Copy the top-scored candidate into ``run_dir``; summary.json last, as the mark
    of a finished run. Ties go to the earlier candidate (source-only first)."""
    criterion = plan["criterion"]
    best = top_scored(rows, criterion)
    chosen = Path(rows[best]["path"])
    for name in RUN_FILES:
        if (chosen / name).exists():
            shutil.copy2(chosen / name, run_dir / name)
    if (run_dir / CHECKPOINTS).exists():
        shutil.rmtree(run_dir / CHECKPOINTS)
    shutil.copytree(chosen / CHECKPOINTS, run_dir / CHECKPOINTS)
    summary = {
        **read_json(chosen / "summary.json"),
        "selection": {
            "criterion": criterion,
            "chosen": rows[best]["name"],
            "candidates": [{**row, "chosen": i == best} for i, row in enumerate(rows)],
        },
    }
    write_json(run_dir / "summary.json", summary)
    return summary

"""``dann-serve adapt``: a trained run adapted again, to a new folder of unlabelled images.

A served model's inputs move (a new scanner, another population's handwriting), and
the images the server captured are a ready target with no labels. Adapting to them
trains the parent's method on the parent's source and the new target, starting from
the parent's weights (``warm``) or from random ones (``fresh``); where the new images
are in colour, DANN on a textured source instead (:func:`adapt_method`).

Retraining can make things worse, and without labels nobody would see it. So the
parent is a candidate too, as source-only is in ``train --select``: both are scored
on the new target by the same label-free criterion (:mod:`criteria`), through the
selection's own rows and copy (:func:`selection.scored`, :func:`selection.adopt_best`),
and the better one becomes the new run. The parent is the first row, so a tie keeps
it. Where it wins, the new run is the parent's model, re-measured on the new target.

The run's ``config.json`` and ``summary.json`` carry the lineage: the parent run, the
version that served the images if the target is a capture folder (its manifest says
which), the target folder and how the weights started;
``dann-serve export`` copies it into ``export.json``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import numpy as np

from dann_serve.config import (
    ADAPT_STARTS,
    CAPTURE_MANIFEST,
    DEFAULT_ADAPT_START,
    DEFAULT_ADAPT_STEPS,
    DEFAULT_CRITERION,
    TrainConfig,
)
from dann_serve.data import DatasetError, Domain, is_colour
from dann_serve.data.catalog import canonical
from dann_serve.experiments.selection import (
    CANDIDATES_DIR,
    RUN_FILES,
    adopt_best,
    marked,
    scored,
)
from dann_serve.files import write_json
from dann_serve.training.rundir import CHECKPOINTS, RunError, load_config, read_json

PLAN = "adapt.json"
# The method a colour target is adapted with (adapt_method).
TEXTURED_SOURCE = "dann-texture"


def adapt_run(
    parent: Path,
    target: str | Path,
    out: Path,
    start: str = DEFAULT_ADAPT_START,
    steps: int | None = None,
    criterion: str = DEFAULT_CRITERION,
    resume: bool = False,
    show_progress: bool = True,
    method: str | None = None,
) -> dict:
    """Adapt ``parent`` to the unlabelled folder ``target`` into the run ``out`` with
    ``method`` (None: :func:`adapt_method` picks), keep the better of the new run and
    the parent by ``criterion``; returns the summary."""
    from dann_serve.training.loop import load_pair, train_or_reuse

    parent, out = Path(parent).resolve(), Path(out)
    if resume:
        plan = _resumed_plan(out, parent, target, method)
    else:
        plan = _new_plan(parent, target, out, start, steps, criterion)
    config = _adapted_config(load_config(parent), plan)
    pair = load_pair(config)  # bad data fails before anything is trained
    if "method" not in plan:  # a new plan, or one saved before the method was recorded
        plan["method"] = adapt_method(config.method, method, pair[1].train.images)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / PLAN, plan)
    candidates = out / CANDIDATES_DIR
    kept = _parent_candidate(parent, candidates / "parent", config, pair)
    trained_before = (candidates / "adapted" / "summary.json").exists()
    began = time.monotonic()
    adapted = train_or_reuse(
        dataclasses.replace(config, method=plan["method"]),
        candidates / "adapted",
        show_progress,
        warm_from=parent if plan["start"] == "warm" else None,
    )
    # A resumed adaptation that finds the run trained did not time it.
    seconds = None if trained_before else time.monotonic() - began
    described = f"{plan['method']}, {config.steps} steps from {plan['start']} weights"
    rows = [
        scored("parent", candidates / "parent", kept, plan["criterion"], "the parent, unchanged"),
        scored("adapted", candidates / "adapted", adapted, plan["criterion"], described),
    ]
    return _finish(out, plan, rows, seconds)


def adapt_method(parents: str, given: str | None, images: np.ndarray) -> str:
    """The method to adapt with: ``given``, else DANN on a textured source where the new
    images are in colour, else the parent's. A grey source never showed the network a
    digit inverted out of a coloured, textured background. Measured on a usps -> mnist
    parent (its method dann-weak) adapted warm, 1,000 steps, to 2,000 captured images
    of digits on colour textures: its own method won back 4% of the 30 points the shift
    took, a textured source 56%; trained side by side, no label-free criterion ranked
    them reliably (entropy -0.095 against -0.106, the wrong way), so colour decides. On
    grey images a textured source moves away from the target, so it is not used there.
    The parent stays a candidate either way."""
    if given is not None:
        return given
    return TEXTURED_SOURCE if is_colour(images) else parents


def lineage(plan: dict) -> dict:
    """Where a run came from: its parent run, the version that served the target's
    images (a capture folder's manifest; None if unknown), the target folder and how the
    weights started."""
    return {key: plan[key] for key in ("parent_run", "parent_version", "target", "start")}


def _new_plan(
    parent: Path,
    target: str | Path,
    out: Path,
    start: str,
    steps: int | None,
    criterion: str,
) -> dict:
    """What ``adapt.json`` records, after checking every input; nothing is written."""
    if start not in ADAPT_STARTS:
        raise ValueError(f"unknown --start {start!r}: choose warm or fresh")
    if not (parent / "summary.json").exists() or not (parent / "config.json").exists():
        raise RunError(f"{parent}: not a finished training run (no summary.json or config.json)")
    folder = Path(target).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"{target}: no such folder")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DatasetError(f"{target}: cannot read the folder (permission denied)")
    if out.exists() and any(out.iterdir()):
        raise RunError(
            f"{out}: not empty; pass --resume to continue an adaptation there "
            "or choose another --out"
        )
    return {
        "parent_run": str(parent),
        "parent_version": captured_version(folder),
        "target": canonical(str(folder)),
        "start": start,
        "steps": steps or DEFAULT_ADAPT_STEPS[start],
        "criterion": criterion,
    }


def captured_version(folder: Path) -> int | None:
    """The model version whose answers ``folder`` captured, from the manifest capture
    writes in each version's folder; None for any other folder, or an unreadable
    manifest (lineage is a record, not worth failing an adaptation over)."""
    try:
        version = read_json(folder / CAPTURE_MANIFEST).get("version")
    except (RunError, OSError, ValueError, AttributeError):  # ValueError: not UTF-8
        return None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _resumed_plan(out: Path, parent: Path, target: str | Path, method: str | None) -> dict:
    """The plan an interrupted adaptation saved; RunError if it names another parent,
    target or method than the command line does."""
    if not (out / PLAN).exists():
        raise RunError(f"{out}: no adaptation to resume (no {PLAN})")
    plan = read_json(out / PLAN)
    given = {"parent_run": str(parent), "target": canonical(str(Path(target).expanduser()))}
    if method is not None:
        given["method"] = method
    differing = [
        f"{key} {plan.get(key)} -> {value}"
        for key, value in given.items()
        if plan.get(key) != value
    ]
    if differing:
        raise RunError(f"{out} adapts another run (saved -> given): {'; '.join(differing)}")
    return plan


def _adapted_config(parent: TrainConfig, plan: dict) -> TrainConfig:
    """The parent's options with the new target (tested on a sample of its own images:
    a capture folder has no labelled test folder) and the plan's steps. A warm start's
    network reads digits already, which is what the shifts' ramp waits for: its shifts
    are at full size from the first step."""
    return dataclasses.replace(
        parent,
        target=plan["target"],
        target_test=None,
        steps=plan["steps"],
        shift_ramp=parent.shift_ramp and plan["start"] != "warm",
    )


def _parent_candidate(
    parent: Path, where: Path, adapted: TrainConfig, pair: tuple[Domain, Domain]
) -> dict:
    """The parent's model as a run on the new target: its checkpoints and curves, its
    options with the new target, its figures measured on the new target; the summary."""
    from dann_serve.training.evaluation import label_free_figures, pair_accuracies, restore_model
    from dann_serve.training.rundir import run_record

    if (where / "summary.json").exists():
        return read_json(where / "summary.json")
    config = dataclasses.replace(adapted, steps=load_config(parent).steps)
    source, target = pair
    model = restore_model(parent)
    figures = pair_accuracies(model, source.test, target.test)
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(parent / CHECKPOINTS, where / CHECKPOINTS)
    for name in (name for name in RUN_FILES if name != "config.json"):  # names the new target
        if (parent / name).exists():
            shutil.copy2(parent / name, where / name)
    write_json(where / "config.json", run_record(config, source, target, {}))
    summary = {
        **read_json(parent / "summary.json"),
        "target": config.target,
        "source_test_accuracy": figures["source_accuracy"],
        "target_test_accuracy": figures["target_accuracy"],
        "domain_accuracy": figures["domain_accuracy"],
        "target_labels": target.test.labelled,
        "target_label_free": label_free_figures(model, target.test),
    }
    write_json(where / "summary.json", summary)
    return summary


def _finish(out: Path, plan: dict, rows: list[dict], seconds: float | None) -> dict:
    """The better row made ``out``'s run, the lineage added to its config.json and its
    summary.json (written last, the mark of a finished run)."""
    # Unguarded: captured images may hold any mix of classes, and the class-share guard
    # of --select reads the source's mix as the yardstick.
    best, chosen = adopt_best(out, rows, plan["criterion"], guarded=False)
    record = read_json(out / "config.json")
    write_json(out / "config.json", {**record, "lineage": lineage(plan)})
    summary = {
        **chosen,
        "lineage": lineage(plan),
        "adaptation": {
            "criterion": plan["criterion"],
            "steps": plan["steps"],
            "chosen": rows[best]["name"],
            "parent_kept": rows[best]["name"] == "parent",
            "train_seconds": None if seconds is None else round(seconds, 1),
            "candidates": marked(rows, best, guarded=False),
        },
    }
    write_json(out / "summary.json", summary)
    return summary

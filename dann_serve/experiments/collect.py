"""The runs of each pair as found on disk: finished, unfinished, broken or missing.

``dann-serve compare`` trains the runs of one pair into
``<runs>/<source>-<target>/<method>-seed<N>/`` (:mod:`dann_serve.experiments.compare`):
source-only and one adapting method. This module only reads them. A run counts once
its ``summary.json`` exists; any run of the asked pairs and seeds that is absent or
unfinished is listed as such, never guessed, and a pair is averaged over the seeds
whose two methods both finished, so that every gain is a paired one. A pair with
``compare --select`` runs (``select-seed<N>/``) for any asked seed is reported with
them: its seeds count as complete once all three finished.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from dann_serve import data
from dann_serve.config import FORMER_DEFAULTS, TrainConfig
from dann_serve.experiments.compare import (
    BASELINE,
    SELECT,
    kind_label,
    pair_dir,
    pair_slug,
    run_dir,
    target_known,
)
from dann_serve.training.methods import method_names
from dann_serve.training.rundir import RunError, read_metrics

DEFAULT_PAIRS = (("usps", "mnist"), ("mnist", "usps"), ("fonts", "digits"), ("fonts", "mnist"))
# Options that may differ between the runs of a pair without breaking the comparison
# (a --select run's candidates differ from each other in their method alone).
PER_RUN_OPTIONS = {"method", "seed", "data_dir"}


@dataclass(frozen=True)
class Run:
    """One run directory as found on disk: finished, unfinished, unreadable or missing."""

    kind: str  # a method, or SELECT
    seed: int
    path: Path
    config: dict | None = None
    summary: dict | None = None
    problem: str = ""

    @property
    def finished(self) -> bool:
        return self.summary is not None and self.config is not None

    @property
    def options(self) -> dict:
        # An option the run predates reads as it trained (FORMER_DEFAULTS), not as today's.
        saved = (self.config or {}).get("options", {})
        return {**dataclasses.asdict(TrainConfig()), **FORMER_DEFAULTS, **saved}

    def metrics(self) -> list[dict]:
        return read_metrics(self.path / "metrics.csv")


def read_run(path: Path, kind: str, seed: int) -> Run:
    """What ``path`` holds; never raises for a missing or broken run."""
    if not path.is_dir():
        return Run(kind, seed, path, problem="missing")
    if kind == SELECT and not (path / "summary.json").exists():  # run files come at the end
        return Run(kind, seed, path, problem="unfinished (selecting or interrupted)")
    found = {}
    for name in ("config.json", "summary.json"):
        try:
            found[name] = json.loads((path / name).read_text())
        except FileNotFoundError:
            found[name] = None
        except (OSError, json.JSONDecodeError) as error:
            return Run(kind, seed, path, problem=f"unreadable {name} ({error})")
    if found["config.json"] is None:
        return Run(kind, seed, path, problem="no config.json (not a training run)")
    if found["summary.json"] is None:
        return Run(
            kind,
            seed,
            path,
            found["config.json"],
            problem="unfinished (training or interrupted: no summary.json)",
        )
    if not (path / "metrics.csv").is_file():
        return Run(kind, seed, path, found["config.json"], problem="no metrics.csv")
    try:  # a run saved before --method names no method: refused, not read as DANN
        TrainConfig.from_dict(found["config.json"].get("options", {}))
    except ValueError as error:
        return Run(kind, seed, path, problem=str(error))
    if kind == SELECT and "selection" not in found["summary.json"]:
        return Run(kind, seed, path, found["config.json"], problem="not a --select run")
    return Run(kind, seed, path, found["config.json"], found["summary.json"])


def shared_options(run: Run) -> dict:
    """The options a run shares with the other runs of its pair: all but its own
    method, seed and data folder."""
    return {k: v for k, v in run.options.items() if k not in PER_RUN_OPTIONS}


@dataclass
class PairRuns:
    """The runs of one pair for the asked seeds, plus seeds found beyond them."""

    source: str
    target: str
    seeds: list[int]
    runs: dict[tuple[str, int], Run]
    other_seeds: list[int] = field(default_factory=list)
    adapted: str = TrainConfig.method  # the method compared with source-only
    selected: bool = False  # whether the pair is reported with its ``--select`` runs

    @property
    def name(self) -> str:
        return f"{self.source} -> {self.target}"

    @property
    def slug(self) -> str:
        return pair_slug(self.source, self.target)

    @property
    def compared(self) -> tuple[str, str]:
        """The two methods, baseline first (in tables, lists and legends)."""
        return BASELINE, self.adapted

    @property
    def kinds(self) -> tuple[str, ...]:
        """The runs each seed needs: both methods, and the selection if reported."""
        return (*self.compared, SELECT) if self.selected else self.compared

    @property
    def complete_seeds(self) -> list[int]:
        return [s for s in self.seeds if all(self.runs[k, s].finished for k in self.kinds)]

    def finished(self, kind: str) -> list[Run]:
        return [self.runs[kind, seed] for seed in self.complete_seeds]

    def complete_summaries(self) -> list[dict]:
        """summary.json of both methods of every complete seed (what pair_table reads)."""
        return [
            cast(dict, run.summary) for method in self.compared for run in self.finished(method)
        ]

    def complete_selections(self) -> list[dict]:
        """summary.json of the ``--select`` run of every complete seed (none without)."""
        return [cast(dict, run.summary) for run in self.finished(SELECT)] if self.selected else []

    @property
    def target_labelled(self) -> bool:
        """Whether the reported runs measured their target accuracy (False: the target
        has no labels, and its accuracy is unknown)."""
        return target_known(self.complete_summaries())

    def all_finished(self) -> list[Run]:
        """The finished runs of either method (``--select`` runs copy one of their
        candidates, so they are not counted again among the settings)."""
        return [run for (kind, _), run in self.runs.items() if kind != SELECT and run.finished]

    def missing(self) -> list[tuple[str, str]]:
        """``(run, why)`` for each asked run that the figures leave out."""
        waiting = (
            "finished, left out until the other runs of its seed finish"
            if self.selected
            else "finished, left out until the other method of its seed finishes"
        )
        left_out = []
        for kind in self.kinds:
            for seed in self.seeds:
                run = self.runs[kind, seed]
                if not run.finished:
                    left_out.append((f"{kind_label(kind)} seed {seed}", run.problem))
                elif seed not in self.complete_seeds:
                    left_out.append((f"{kind_label(kind)} seed {seed}", waiting))
        return left_out

    def differences(self) -> dict[str, list]:
        """Options that are not the same across the finished runs (method and seed aside)."""
        values: dict[str, set] = {}
        for run in [run for run in self.runs.values() if run.finished]:
            for option, value in shared_options(run).items():
                values.setdefault(option, set()).add(json.dumps(value))
            data = {
                role: {k: v for k, v in part.items() if k != "note"}
                for role, part in cast(dict, run.config).get("data", {}).items()
            }
            values.setdefault("data", set()).add(json.dumps(data, sort_keys=True))
        return {
            k: sorted(json.loads(v) for v in vs) if k != "data" else sorted(vs)
            for k, vs in values.items()
            if len(vs) > 1
        }


def collect_pair(runs: Path, source: str, target: str, seeds: Sequence[int]) -> PairRuns:
    """The runs of a pair; a folder given as a relative path is found as compare,
    which records folders as absolute paths, named it. The ``--select`` runs are
    read when any asked seed has one."""
    source, target = data.canonical(source), data.canonical(target)
    selected = any(run_dir(runs, source, target, SELECT, seed).exists() for seed in seeds)
    adapted = _adapted_method(runs, source, target, seeds)
    kinds = (BASELINE, adapted, SELECT) if selected else (BASELINE, adapted)
    found = {
        (kind, seed): read_run(run_dir(runs, source, target, kind, seed), kind, seed)
        for seed in seeds
        for kind in kinds
    }
    names = "|".join(re.escape(kind) for kind in (*method_names(), SELECT))
    on_disk = set()
    if pair_dir(runs, source, target).is_dir():
        for child in pair_dir(runs, source, target).iterdir():
            match = re.fullmatch(rf"(?:{names})-seed(-?\d+)", child.name)
            if match and (child / "summary.json").is_file():
                on_disk.add(int(match.group(1)))
    other_seeds = sorted(on_disk - set(seeds))
    return PairRuns(source, target, list(seeds), found, other_seeds, adapted, selected)


def _adapted_method(runs: Path, source: str, target: str, seeds: Sequence[int]) -> str:
    """The adapting method a pair was compared with, by its run folders of the asked
    seeds (DANN where none is there yet); RunError for runs of several."""
    found = [
        method
        for method in method_names()
        if method != BASELINE
        and any(run_dir(runs, source, target, method, seed).exists() for seed in seeds)
    ]
    if len(found) > 1:
        raise RunError(
            f"{pair_dir(runs, source, target)}: runs of several adapting methods "
            f"({', '.join(found)}): report each from its own folder of runs"
        )
    return found[0] if found else TrainConfig.method

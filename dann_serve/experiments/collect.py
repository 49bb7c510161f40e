"""The runs of each pair as found on disk: finished, unfinished, broken or missing.

``dann-serve compare`` trains the runs of one pair into
``<runs>/<source>-<target>/<mode>-seed<N>/`` (:mod:`dann_serve.experiments.compare`); this module
only reads them. A run counts once its ``summary.json`` exists; any run of the asked
pairs and seeds that is absent or unfinished is listed as such, never guessed, and a
pair is averaged over the seeds whose two modes both finished, so that every gain is
a paired one. A pair with ``compare --select`` runs (``select-seed<N>/``) for any asked
seed is reported with them: its seeds count as complete once all three finished.
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
from dann_serve.config import MODES, TrainConfig
from dann_serve.experiments.compare import (
    KIND_LABELS,
    SELECT,
    pair_dir,
    pair_slug,
    run_dir,
    target_known,
)
from dann_serve.training.rundir import read_metrics

DEFAULT_PAIRS = (("usps", "mnist"), ("mnist", "usps"), ("fonts", "digits"), ("fonts", "mnist"))
REPORT_ORDER = ("source-only", "dann")  # baseline first, in tables, lists and legends
# Options that may differ between the runs of a pair without breaking the comparison.
PER_RUN_OPTIONS = {"mode", "seed", "data_dir"}


@dataclass(frozen=True)
class Run:
    """One run directory as found on disk: finished, unfinished, unreadable or missing."""

    mode: str
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
        return {**dataclasses.asdict(TrainConfig()), **(self.config or {}).get("options", {})}

    def metrics(self) -> list[dict]:
        return read_metrics(self.path / "metrics.csv")


def read_run(path: Path, mode: str, seed: int) -> Run:
    """What ``path`` holds; never raises for a missing or broken run."""
    if not path.is_dir():
        return Run(mode, seed, path, problem="missing")
    if mode == SELECT and not (path / "summary.json").exists():  # run files come at the end
        return Run(mode, seed, path, problem="unfinished (selecting or interrupted)")
    found = {}
    for name in ("config.json", "summary.json"):
        try:
            found[name] = json.loads((path / name).read_text())
        except FileNotFoundError:
            found[name] = None
        except (OSError, json.JSONDecodeError) as error:
            return Run(mode, seed, path, problem=f"unreadable {name} ({error})")
    if found["config.json"] is None:
        return Run(mode, seed, path, problem="no config.json (not a training run)")
    if found["summary.json"] is None:
        return Run(
            mode,
            seed,
            path,
            found["config.json"],
            problem="unfinished (training or interrupted: no summary.json)",
        )
    if not (path / "metrics.csv").is_file():
        return Run(mode, seed, path, found["config.json"], problem="no metrics.csv")
    if mode == SELECT and "selection" not in found["summary.json"]:
        return Run(mode, seed, path, found["config.json"], problem="not a --select run")
    return Run(mode, seed, path, found["config.json"], found["summary.json"])


def shared_options(run: Run) -> dict:
    """The options a run shares with the other runs of its pair: all but its own mode,
    seed and data folder, and, for a ``--select`` run, what its candidates vary."""
    varied = set(PER_RUN_OPTIONS)
    if run.mode == SELECT and run.summary is not None:
        for candidate in run.summary["selection"]["candidates"]:
            varied |= set(candidate["options"])
    return {k: v for k, v in run.options.items() if k not in varied}


@dataclass
class PairRuns:
    """The runs of one pair for the asked seeds, plus seeds found beyond them."""

    source: str
    target: str
    seeds: list[int]
    runs: dict[tuple[str, int], Run]
    other_seeds: list[int] = field(default_factory=list)
    kinds: tuple[str, ...] = REPORT_ORDER  # the runs each seed needs, SELECT among them or not

    @property
    def name(self) -> str:
        return f"{self.source} -> {self.target}"

    @property
    def slug(self) -> str:
        return pair_slug(self.source, self.target)

    @property
    def selected(self) -> bool:
        """Whether the pair is reported with its ``--select`` runs."""
        return SELECT in self.kinds

    @property
    def complete_seeds(self) -> list[int]:
        return [s for s in self.seeds if all(self.runs[k, s].finished for k in self.kinds)]

    def finished(self, mode: str) -> list[Run]:
        return [self.runs[mode, seed] for seed in self.complete_seeds]

    def complete_summaries(self) -> list[dict]:
        """summary.json of both modes of every complete seed (what pair_table reads)."""
        return [cast(dict, run.summary) for mode in REPORT_ORDER for run in self.finished(mode)]

    def complete_selections(self) -> list[dict]:
        """summary.json of the ``--select`` run of every complete seed (none without)."""
        return [cast(dict, run.summary) for run in self.finished(SELECT)] if self.selected else []

    @property
    def target_labelled(self) -> bool:
        """Whether the reported runs measured their target accuracy (False: the target
        has no labels, and its accuracy is unknown)."""
        return target_known(self.complete_summaries())

    def all_finished(self) -> list[Run]:
        """The finished runs of either mode (``--select`` runs copy one of their
        candidates, so they are not counted again among the settings)."""
        return [run for (kind, _), run in self.runs.items() if kind in MODES and run.finished]

    def missing(self) -> list[tuple[str, str]]:
        """``(run, why)`` for each asked run that the figures leave out."""
        waiting = (
            "finished, left out until the other runs of its seed finish"
            if self.selected
            else "finished, left out until its other mode finishes"
        )
        left_out = []
        for kind in self.kinds:
            for seed in self.seeds:
                run = self.runs[kind, seed]
                if not run.finished:
                    left_out.append((f"{KIND_LABELS[kind]} seed {seed}", run.problem))
                elif seed not in self.complete_seeds:
                    left_out.append((f"{KIND_LABELS[kind]} seed {seed}", waiting))
        return left_out

    def differences(self) -> dict[str, list]:
        """Options that are not the same across the finished runs (mode and seed aside)."""
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
    kinds = (*REPORT_ORDER, SELECT) if selected else REPORT_ORDER
    found = {
        (kind, seed): read_run(run_dir(runs, source, target, kind, seed), kind, seed)
        for seed in seeds
        for kind in kinds
    }
    on_disk = set()
    if pair_dir(runs, source, target).is_dir():
        for child in pair_dir(runs, source, target).iterdir():
            match = re.fullmatch(r"(?:dann|source-only|select)-seed(-?\d+)", child.name)
            if match and (child / "summary.json").is_file():
                on_disk.add(int(match.group(1)))
    return PairRuns(source, target, list(seeds), found, sorted(on_disk - set(seeds)), kinds)

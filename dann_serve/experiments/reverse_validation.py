"""Reverse validation: a label-free score for choosing between trained runs.

Target labels may not pick a hyper-parameter, a step or a checkpoint, yet a user
still has to choose between settings. Ganin et al. (JMLR 2016, section 5.1.5) score
a run without target labels by turning the problem around: label the target
training images with the run's own predictions, train a *reverse* model from those
pseudo-labelled target images back to the (unlabelled) source images with the same
algorithm and settings, and measure the reverse model on the labelled source test
split. A forward model whose target predictions are consistent with the source
classes yields a reverse model that reads the source well; one that adapted to the
wrong classes does not.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dann_serve.config import REVERSE_VALIDATION_STEPS
from dann_serve.data import Domain, Split
from dann_serve.progress import progress_bar
from dann_serve.training.evaluation import accuracy, decisions, restore_model
from dann_serve.training.loop import load_pair
from dann_serve.training.rundir import load_config
from dann_serve.training.step import Trainer


def reverse_validation(
    run_dir: Path, steps: int = REVERSE_VALIDATION_STEPS, show_progress: bool = False
) -> float:
    """Source test accuracy of the reverse model of a run (higher is better).

    The reverse run keeps every option of the forward run (method, schedules, seed)
    except the number of steps, so runs of different settings are scored by the
    same algorithm they were trained with.
    """
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    forward = restore_model(run_dir)
    source, target = load_pair(config)
    # The forward model's own decisions label the target: its labels are never read.
    pseudo = Split(target.train.images, decisions(forward, target.train)[0])
    reverse_source = Domain(f"{target.name}-pseudo", train=pseudo, test=pseudo)
    reverse_config = dataclasses.replace(
        config, source=reverse_source.name, target=source.name, steps=steps
    )
    trainer = Trainer(reverse_config, reverse_source, source)
    for _ in progress_bar(
        range(steps), show=show_progress, desc=f"reverse {run_dir.name}", unit="step"
    ):
        trainer.train_step()
    return accuracy(trainer.averaged, source.test)

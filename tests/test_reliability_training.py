"""Training killed with SIGKILL (issue 7): ``--resume`` goes on from the last complete
checkpoint with the same step counter and schedule position, and a kill in the middle
of a checkpoint write never leaves a checkpoint that cannot be loaded.

The runs are real ``dann-serve train`` processes (``tests/tiny_data.py`` registers the
tiny domains); with ``--eval-every 1`` a checkpoint is written after every step, so
checkpoints are being written most of the time the process lives.
"""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.training.loop import Trainer, train_run

TINY_CLI = Path(__file__).with_name("tiny_data.py")
STEPS = 12
ITERATIONS = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
OPTIONS = {"steps": STEPS, "batch_size": 32, "eval_every": 1, "learning_rate": 0.01}


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def _latest_step(checkpoints: Path) -> int | None:
    path = tf.train.latest_checkpoint(str(checkpoints))
    return int(path.rsplit("-", 1)[1]) if path else None


class Training:
    """One ``dann-serve train`` process on the tiny pair, and what it was seen to write."""

    def __init__(self, run_dir: Path, *extra: str) -> None:
        self.run_dir = run_dir
        self.checkpoints = run_dir / "checkpoints"
        self.log_path = run_dir.with_name(f"{run_dir.name}-{time.monotonic_ns()}.log")
        flags = [f"--{name.replace('_', '-')}={value}" for name, value in OPTIONS.items()]
        command = [
            sys.executable,
            str(TINY_CLI),
            "train",
            "--source=tiny-fonts",
            "--target=tiny-digits",
            *flags,
            "--quiet",
            f"--out={run_dir}",
            *extra,
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            )
        # The latest checkpoint at the start, then each new one `checkpoint` names.
        self.steps_seen: list[int | None] = [_latest_step(self.checkpoints)]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def watch(self, stop: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll every few ms, recording new latest checkpoints, until ``stop()`` or exit."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and not stop():
            step = _latest_step(self.checkpoints)
            if step != self.steps_seen[-1]:
                self.steps_seen.append(step)
            assert time.monotonic() < deadline, f"training stalled:\n{self.log()}"
            time.sleep(0.003)

    def kill(self) -> int | None:
        """SIGKILL; the step of the checkpoint it leaves as the latest."""
        assert self.process.poll() is None, f"finished before the kill:\n{self.log()}"
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(30) == -signal.SIGKILL
        return _latest_step(self.checkpoints)

    def writing_checkpoint(self) -> bool:
        """A checkpoint is being written right now (its ``ckpt-N_temp`` directory exists)."""
        try:
            return any(name.endswith("_temp") for name in os.listdir(self.checkpoints))
        except FileNotFoundError:
            return False


def _assert_loadable(checkpoints: Path, step: int) -> None:
    """The latest checkpoint reads back whole, and its optimiser is at its step."""
    path = tf.train.latest_checkpoint(str(checkpoints))
    assert path is not None and path.endswith(f"ckpt-{step}")
    reader = tf.train.load_checkpoint(path)
    assert int(reader.get_tensor(ITERATIONS)) == step
    for name, dtype in reader.get_variable_to_dtype_map().items():  # every tensor's bytes
        if dtype != tf.variant:  # the data iterator's state has no numpy form
            reader.get_tensor(name)


def test_sigkill_at_random_steps_and_mid_checkpoint_resumes_like_an_uninterrupted_run(
    tiny_pair, tmp_path
):
    chooser = random.Random()  # a fresh kill point each run; the seed goes in failures
    seed = chooser.randrange(2**32)
    chooser.seed(seed)
    run_dir = tmp_path / "killed"

    # 1. Killed at a random moment once a random step is checkpointed.
    first = Training(run_dir)
    target = chooser.randint(2, 5)
    first.watch(lambda: (_latest_step(first.checkpoints) or 0) >= target)
    time.sleep(chooser.uniform(0.0, 0.3))  # somewhere inside the next step or its save
    kept = first.kill()
    assert kept is not None and kept >= target, f"seed {seed}: {first.log()}"
    _assert_loadable(first.checkpoints, kept)

    # 2. Resumed, then killed while it writes a checkpoint.
    second = Training(run_dir, "--resume")
    second.watch(lambda: len(second.steps_seen) >= 3 and second.writing_checkpoint())
    writing = second.writing_checkpoint()  # almost always: killed within a few ms of seeing it
    resumed_at, kept = kept, second.kill()
    assert second.steps_seen[:2] == [resumed_at, resumed_at + 1], f"seed {seed}"
    assert kept is not None and kept >= second.steps_seen[-1], f"seed {seed}"
    _assert_loadable(second.checkpoints, kept)

    # 3. Resumed again, to the end.
    third = Training(run_dir, "--resume")
    third.watch(lambda: False, timeout=120)
    assert third.process.returncode == 0, f"seed {seed}:\n{third.log()}"
    assert third.steps_seen[:2] == [kept, kept + 1], f"seed {seed}: {third.steps_seen}"
    _assert_loadable(third.checkpoints, STEPS)

    # The metrics log holds every step once, and equals a run that was never killed.
    config = TrainConfig(source=tiny_pair[0], target=tiny_pair[1], **OPTIONS)
    train_run(config, tmp_path / "straight", show_progress=False)
    straight, killed = _rows(tmp_path / "straight"), _rows(run_dir)
    assert [int(row["step"]) for row in killed] == list(range(STEPS + 1)), f"seed {seed}"
    for want, got in zip(straight, killed, strict=True):
        for name, value in want.items():
            assert float(got[name]) == pytest.approx(float(value), rel=1e-4, abs=1e-5), (
                f"seed {seed}, step {want['step']}, {name} (mid-write kill: {writing})"
            )
        p = int(got["step"]) / STEPS  # the schedules' position, by their formulas
        assert float(got["lambda"]) == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1, abs=1e-5)
        assert float(got["learning_rate"]) == pytest.approx(0.01 / (1 + 10 * p) ** 0.75, rel=1e-5)


def test_a_run_killed_before_its_first_checkpoint_can_be_started_again(
    tiny_pair, tmp_path, monkeypatch
):
    """SIGKILL during the first ``eval_every`` steps, simulated in process: the step
    raises an exception ``train_run`` does not handle, so nothing is saved on the way
    out, just as after a kill."""
    config = TrainConfig(
        source=tiny_pair[0], target=tiny_pair[1], steps=4, batch_size=32, eval_every=2
    )

    class Killed(BaseException):
        pass

    def killed(self: Trainer) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_step", killed)
        with pytest.raises(Killed):
            train_run(config, tmp_path / "run", show_progress=False)
    assert _latest_step(tmp_path / "run" / "checkpoints") is None
    summary = train_run(config, tmp_path / "run", resume=True, show_progress=False)
    assert summary["step"] == 4
    assert _latest_step(tmp_path / "run" / "checkpoints") == 4

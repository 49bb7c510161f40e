"""Training killed with SIGKILL: ``--resume`` goes on from the last complete checkpoint
with the same step counter and schedule position, and a kill in the middle of a
checkpoint write never leaves a checkpoint that cannot be loaded.

The runs are real ``dann-serve train`` processes (``tests/support/tiny_data.py`` registers the
tiny domains); with ``--eval-every 1`` a checkpoint is written after every step. A
write shows on disk as ``ckpt-N_temp/``, then ``ckpt-N.index`` and ``ckpt-N.data-*``,
and ends when the ``checkpoint`` state file names ``ckpt-N``: files of a checkpoint
newer than the one named are a write under way, or, once the process is dead, a write
the kill cut short. The kill points come from a generator with a fixed seed.
"""

from __future__ import annotations

import gc
import math
import os
import random
import re
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import tensorflow as tf
from support import tiny_data

from dann_serve.config import TrainConfig
from dann_serve.training.loop import train_run
from dann_serve.training.rundir import read_metrics
from dann_serve.training.step import Trainer

STEPS = 12
ITERATIONS = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
OPTIONS = {"steps": STEPS, "batch_size": 32, "eval_every": 1, "learning_rate": 0.01}
SEED = 20240611  # of the kill points; a failure names it
CHECKPOINT_FILE = re.compile(r"ckpt-(\d+)(?:_temp|\.index|\.data-\d+-of-\d+)$")


def _latest_step(checkpoints: Path) -> int | None:
    path = tf.train.latest_checkpoint(str(checkpoints))
    return int(path.rsplit("-", 1)[1]) if path else None


def _unrecorded(checkpoints: Path) -> dict[str, int]:
    """{file name: checkpoint number} of the files of checkpoints newer than the one the
    ``checkpoint`` state file names (see the module's docstring)."""
    latest = _latest_step(checkpoints) or 0
    try:
        names = os.listdir(checkpoints)
    except FileNotFoundError:
        return {}
    numbers = {name: CHECKPOINT_FILE.match(name) for name in names}
    return {
        name: int(match[1]) for name, match in numbers.items() if match and int(match[1]) > latest
    }


class Training:
    """One ``dann-serve train`` process on the tiny pair, and what it was seen to write."""

    def __init__(self, run_dir: Path, *extra: str) -> None:
        self.run_dir = run_dir
        self.checkpoints = run_dir / "checkpoints"
        self.log_path = run_dir.with_name(f"{run_dir.name}-{time.monotonic_ns()}.log")
        flags = [f"--{name.replace('_', '-')}={value}" for name, value in OPTIONS.items()]
        self.process = tiny_data.start_cli(
            "train",
            f"--source={tiny_data.SOURCE}",
            f"--target={tiny_data.TARGET}",
            *flags,
            "--quiet",
            f"--out={run_dir}",
            *extra,
            log=self.log_path,
        )
        # The latest checkpoint at the start, then each new one `checkpoint` names.
        self.steps_seen: list[int | None] = [_latest_step(self.checkpoints)]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def watch(self, stop: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll every few ms, recording new latest checkpoints, until ``stop()`` or exit."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            step = _latest_step(self.checkpoints)
            if step != self.steps_seen[-1]:
                self.steps_seen.append(step)
            if stop():
                return
            assert time.monotonic() < deadline, f"training stalled:\n{self.log()}"
            time.sleep(0.003)

    def kill(self) -> tuple[int | None, list[str]]:
        """SIGKILL; the step of the checkpoint it leaves as the latest, and the files of
        the checkpoint write it cut short (none if it landed between writes)."""
        assert self.process.poll() is None, f"seed {SEED}: finished before the kill:\n{self.log()}"
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(30) == -signal.SIGKILL
        return _latest_step(self.checkpoints), sorted(_unrecorded(self.checkpoints))

    def writing(self, step: int) -> bool:
        """The checkpoint of ``step`` or a later one is being written right now."""
        return any(number >= step for number in _unrecorded(self.checkpoints).values())


def _assert_loadable(checkpoints: Path, step: int) -> None:
    """The latest checkpoint reads back whole, and its optimiser is at its step."""
    path = tf.train.latest_checkpoint(str(checkpoints))
    assert path is not None and path.endswith(f"ckpt-{step}")
    reader = tf.train.load_checkpoint(path)
    assert int(reader.get_tensor(ITERATIONS)) == step
    for name, dtype in reader.get_variable_to_dtype_map().items():  # every tensor's bytes
        if dtype != tf.variant:  # the data iterator's state has no numpy form
            reader.get_tensor(name)


@pytest.mark.slow
def test_sigkill_at_random_steps_and_mid_checkpoint_resumes_like_an_uninterrupted_run(
    tiny_pair, tmp_path
):
    chooser = random.Random(SEED)
    run_dir = tmp_path / "killed"
    cut_short: list[str] = []  # files of the checkpoint writes the kills interrupted

    # 1. Killed at a random moment once a random step is checkpointed.
    first = Training(run_dir)
    target = chooser.randint(2, 5)
    first.watch(lambda: (_latest_step(first.checkpoints) or 0) >= target)
    time.sleep(chooser.uniform(0.0, 0.3))  # somewhere inside the next step or its save
    kept, interrupted = first.kill()
    assert kept is not None and kept >= target, f"seed {SEED}: {first.log()}"
    _assert_loadable(first.checkpoints, kept)
    cut_short += interrupted

    # 2. Resumed, then killed as soon as it is seen writing the checkpoint of a random
    # later step. Seeing a write is not hitting it: should the write end before the
    # signal lands, the run is resumed and killed again, while steps remain.
    for _ in range(3):
        second = Training(run_dir, "--resume")
        write = kept + chooser.randint(2, 3)
        second.watch(partial(second.writing, write))
        resumed_at, (kept, interrupted) = kept, second.kill()
        assert second.steps_seen[:2] == [resumed_at, resumed_at + 1], f"seed {SEED}"
        assert kept is not None and kept >= write - 1, f"seed {SEED}"
        _assert_loadable(second.checkpoints, kept)
        cut_short += interrupted
        if interrupted or kept + 3 >= STEPS:
            break
    assert cut_short, f"seed {SEED}: no kill landed inside a checkpoint write"

    # 3. Resumed again, to the end.
    third = Training(run_dir, "--resume")
    third.watch(lambda: False, timeout=120)
    assert third.process.returncode == 0, f"seed {SEED}:\n{third.log()}"
    assert third.steps_seen[:2] == [kept, kept + 1], f"seed {SEED}: {third.steps_seen}"
    _assert_loadable(third.checkpoints, STEPS)

    # The metrics log holds every step once, and equals a run that was never killed.
    config = TrainConfig(source=tiny_pair[0], target=tiny_pair[1], **OPTIONS)
    train_run(config, tmp_path / "straight", show_progress=False)
    straight = read_metrics(tmp_path / "straight" / "metrics.csv")
    killed = read_metrics(run_dir / "metrics.csv")
    assert [int(row["step"]) for row in killed] == list(range(STEPS + 1)), f"seed {SEED}"
    for want, got in zip(straight, killed, strict=True):
        for name, value in want.items():
            assert float(got[name]) == pytest.approx(float(value), rel=1e-4, abs=1e-5), (
                f"seed {SEED}, step {want['step']}, {name} (writes cut short: {cut_short})"
            )
        p = int(got["step"]) / STEPS  # the schedules' position, by their formulas
        assert float(got["lambda"]) == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1, abs=1e-5)
        assert float(got["learning_rate"]) == pytest.approx(0.01 / (1 + 10 * p) ** 0.75, rel=1e-5)


@pytest.mark.slow
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


def test_a_checkpoint_with_an_older_data_stream_is_refused_in_one_line(
    tiny_pair, tiny_source, tiny_target, tmp_path
):
    """A run checkpointed by a version whose data stream had other stages (before the
    batches were prepared by tf.data) cannot resume here: one RunError saying what to do,
    and the run directory as it was."""
    from dann_serve.data.pipeline import paired_batches
    from dann_serve.training.rundir import RunError

    config = TrainConfig(
        source=tiny_pair[0], target=tiny_pair[1], steps=10, batch_size=32, eval_every=5
    )
    run_dir = tmp_path / "run"
    train_run(config, run_dir, show_progress=False)
    (run_dir / "summary.json").unlink()
    trainer = Trainer(config, tiny_source, tiny_target)
    earlier_layout = tf.train.Checkpoint(
        model=trainer.model,
        averaged=trainer.averaged,
        optimizer=trainer.optimizer,
        data=iter(paired_batches(tiny_source.train, tiny_target.train, 32, config.seed)),
        target_share=trainer.target_share,
    )
    tf.train.CheckpointManager(earlier_layout, str(run_dir / "checkpoints"), 3).save(5)
    # The iterators go now, not when the interpreter exits: TensorFlow can deadlock
    # destroying a tf.data iterator during interpreter shutdown.
    del trainer, earlier_layout
    gc.collect()
    before = {path.name: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    with pytest.raises(RunError, match=r"ckpt-5: cannot resume .* another version .* --out"):
        train_run(config, run_dir, resume=True, show_progress=False)
    after = {path.name: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    assert after == before

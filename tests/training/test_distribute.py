"""Training under tf.distribute: 2 logical CPU devices (MirroredStrategy) and 2 worker
processes on localhost (MultiWorkerMirroredStrategy) train the run one device trains,
and their checkpoints, kills and resumes behave as one device's.

Logical devices and a cluster are fixed when TensorFlow starts, so the distributed runs
are ``dann-serve train`` processes (``tests/support/tiny_data.py``); the single-device run they
are compared with trains in this process. All runs share OPTIONS and the seed.

Tolerances, two kinds:

- each loss term and its gradient (``tests/training/replica_terms.py``): the replicas sum the
  same float32 terms in another order, which moves a sum by a few units in its last
  place (2^-24 = 6e-8 relative each); they agreed within 8e-8 relative, and ``rel=1e-6``
  allows ten times that. A class-spread term computed on each replica's slice instead
  of the global batch, or a per-replica mean, is off by percents;
- whole runs, step by step: those last-place differences reach the weights, and once a
  max-pooling window or a ReLU has two inputs closer than that, the two runs route a
  gradient differently and drift apart by more than rounding. Over 10 steps, 5 seeds
  and two resamplings of the shifts, rows agreed within 2.1e-7 relative until such a
  switch (none before step 3), and within 2e-4 after it. The first two rows (the same
  initial weights, then one update) are held to ``rel=2e-6``, the rest to ``rel=1e-3``:
  still far below a wrong reduction, which is off by a factor of 2.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from support import tiny_data

from dann_serve.config import TrainConfig
from dann_serve.training.distribute import cluster_task
from dann_serve.training.evaluation import restore_model
from dann_serve.training.loop import train_run
from dann_serve.training.rundir import RunError, read_metrics

STEPS = 10
# float32 whatever --precision auto picks here: the tolerances are float32's last
# place. bfloat16's 8-bit mantissa rounds a replica's half-batch sums apart from the
# whole batch's by about 1% (a property of the precision, not of the strategy).
OPTIONS = {
    "steps": STEPS, "batch_size": 32, "eval_every": 1, "learning_rate": 0.01,
    "precision": "float32",
}  # fmt: skip
LOSSES = ("label_loss", "domain_loss")
SCHEDULES = ("lambda", "learning_rate")
ACCURACIES = ("source_accuracy", "target_accuracy", "domain_accuracy")


def _flags(**options) -> list[str]:
    return [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]


def _train(
    run_dir: Path, *extra: str, env: dict[str, str] | None = None, command: str = "train"
) -> subprocess.Popen:
    """``dann-serve train`` (or ``command``) on the tiny pair with OPTIONS, as a child
    process."""
    log = run_dir.with_name(f"{run_dir.name}-{time.monotonic_ns()}.log")
    process = tiny_data.start_cli(
        command,
        f"--source={tiny_data.SOURCE}",
        f"--target={tiny_data.TARGET}",
        *_flags(**OPTIONS),
        "--quiet",
        f"--out={run_dir}",
        *extra,
        log=log,
        env=env,
    )
    process.log = log
    return process


def _finished(process: subprocess.Popen, timeout: float = 120) -> str:
    """The process's output, once it exited 0."""
    code = process.wait(timeout)
    output = process.log.read_text(errors="replace")
    assert code == 0, output
    return output


def _assert_same_run(got: list[dict], want: list[dict], steps: list[int], start: int = 0) -> None:
    """Rows of ``steps`` in ``got`` equal ``want``'s: schedules exactly, losses within the
    tolerances of the module's docstring (the tight one for the first two rows after
    ``start``, where both runs had the same weights), accuracies within one test image."""
    assert [int(row["step"]) for row in got] == steps
    by_step = {row["step"]: row for row in want}
    for row in got:
        expected = by_step[row["step"]]
        for name in SCHEDULES:
            assert row[name] == expected[name], (row["step"], name)
        rel = 2e-6 if int(row["step"]) <= start + 2 else 1e-3
        for name in LOSSES:
            assert float(row[name]) == pytest.approx(float(expected[name]), rel=rel, abs=1e-7), (
                row["step"],
                name,
            )
        for name in ACCURACIES:
            assert float(row[name]) == pytest.approx(float(expected[name]), abs=0.011), (
                row["step"],
                name,
            )


@pytest.fixture(scope="module")
def single_run(tiny_pair, tmp_path_factory) -> Path:
    """The run on one device, in this process (shared, read-only)."""
    run_dir = tmp_path_factory.mktemp("single") / "run"
    config = TrainConfig(source=tiny_pair[0], target=tiny_pair[1], **OPTIONS)
    train_run(config, run_dir, show_progress=False)
    return run_dir


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory) -> Path:
    """The run on 2 logical CPU devices (shared, read-only)."""
    run_dir = tmp_path_factory.mktemp("mirrored") / "run"
    _finished(_train(run_dir, "--distribute=mirrored", "--cpu-replicas=2"))
    return run_dir


@pytest.mark.slow
def test_each_loss_term_split_over_two_replicas_sums_to_the_one_device_term():
    script = Path(__file__).with_name("replica_terms.py")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report) == {"label", "domain", "weighted domain", "information", "mean prediction"}
    for name, figures in report.items():
        assert figures["replicas"] == pytest.approx(figures["one device"], rel=1e-6), name
        assert figures["gradient difference"] <= 1e-6 * figures["gradient size"], name


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_trains_as_one_device(single_run, mirrored_run):
    record = json.loads((mirrored_run / "config.json").read_text())
    assert record["options"]["distribute"] == "mirrored"
    assert record["distribution"]["replicas"] == 2
    assert len(record["distribution"]["devices"]) == 2
    _assert_same_run(
        read_metrics(mirrored_run / "metrics.csv"),
        read_metrics(single_run / "metrics.csv"),
        list(range(STEPS + 1)),
    )


@pytest.mark.slow
def test_a_mirrored_checkpoint_resumes_on_one_device_and_exports_the_same_model(
    single_run, mirrored_run, tiny_pair, tiny_target, tmp_path
):
    # The checkpoints' objects are the same whatever the strategy: the mirrored run's
    # model is the single run's, as `export` restores it (within the runs' drift).
    images = tiny_target.test.images[:64].astype(np.float32) / 255.0
    mirrored = restore_model(mirrored_run)(images, training=False)[0]
    single = restore_model(single_run)(images, training=False)[0]
    np.testing.assert_allclose(
        tf.nn.softmax(mirrored).numpy(), tf.nn.softmax(single).numpy(), atol=1e-3
    )

    # The mirrored run as if killed after its step-6 checkpoint, resumed on one device.
    run_dir = tmp_path / "run"
    shutil.copytree(mirrored_run, run_dir)
    checkpoints = run_dir / "checkpoints"
    for path in checkpoints.glob("ckpt-*"):
        if int(path.name.split("-")[1].split(".")[0]) > 6:
            path.unlink()
    (checkpoints / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-6"\nall_model_checkpoint_paths: "ckpt-6"\n'
    )
    config = TrainConfig(source=tiny_pair[0], target=tiny_pair[1], **OPTIONS)
    summary = train_run(config, run_dir, resume=True, show_progress=False)
    assert summary["step"] == STEPS
    assert json.loads((run_dir / "config.json").read_text())["distribution"]["replicas"] == 1
    _assert_same_run(
        read_metrics(run_dir / "metrics.csv"),
        read_metrics(single_run / "metrics.csv"),
        list(range(STEPS + 1)),
    )


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for bound in sockets:
        bound.bind(("localhost", 0))
    ports = [bound.getsockname()[1] for bound in sockets]
    for bound in sockets:
        bound.close()
    return ports


def _workers(run_dir: Path, *extra: str, command: str = "train") -> list[subprocess.Popen]:
    """Two ``--distribute multi-worker`` processes, worker 0 (the chief) first."""
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    return [
        _train(
            run_dir,
            "--distribute=multi-worker",
            *extra,
            command=command,
            env={
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": i}}
                )
            },
        )
        for i in range(2)
    ]


def _scratch_dirs() -> set[str]:
    """The temporary checkpoint directories of non-chief workers (removed at exit)."""
    return {path.name for path in Path(tempfile.gettempdir()).glob("dann-serve-worker-*")}


@pytest.mark.slow
def test_two_workers_train_one_run_as_one_device(single_run, tmp_path):
    before = _scratch_dirs()
    run_dir = tmp_path / "run"
    chief, worker = _workers(run_dir)
    assert "source test accuracy" in _finished(chief)
    assert f"worker 1 trained to step {STEPS}" in _finished(worker)
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_dir()) == ["run"]
    assert _scratch_dirs() == before
    record = json.loads((run_dir / "config.json").read_text())
    assert record["distribution"] | {"devices": None} == {
        "strategy": "multi-worker",
        "replicas": 2,
        "workers": 2,
        "task": "worker 0",
        "devices": None,
    }
    assert (run_dir / "summary.json").exists() and (run_dir / "tensorboard").is_dir()
    _assert_same_run(
        read_metrics(run_dir / "metrics.csv"),
        read_metrics(single_run / "metrics.csv"),
        list(range(STEPS + 1)),
    )


@pytest.mark.slow
def test_two_workers_compare_and_select_and_only_the_chief_writes(tmp_path):
    """compare --select under multi-worker: every run, candidate and selection trained
    once by both workers; the chief scores, chooses and prints the table, the other
    worker says so in one line and writes nothing."""
    out = tmp_path / "compare"
    chief, worker = _workers(out, "--seeds=0", "--select", command="compare")
    table = _finished(chief, timeout=300)
    assert "worker 1 trained every run; the chief wrote them" in _finished(worker, 300)
    assert "| seed | source-only | DANN |" in table and "--select" in table
    (pair,) = out.iterdir()
    selection = json.loads((pair / "select-seed0" / "summary.json").read_text())["selection"]
    assert len(selection["candidates"]) == 4
    for name in ("source-only-seed0", "dann-seed0"):
        rows = read_metrics(pair / name / "metrics.csv")
        assert [int(row["step"]) for row in rows] == list(range(STEPS + 1))


def _latest_step(run_dir: Path) -> int:
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


@pytest.mark.slow
def test_a_killed_worker_stops_the_run_and_both_resume_to_the_end(single_run, tmp_path):
    run_dir = tmp_path / "run"
    chief, worker = _workers(run_dir)
    deadline = time.monotonic() + 120
    while _latest_step(run_dir) < 3:
        assert chief.poll() is None and time.monotonic() < deadline, chief.log.read_text()
        time.sleep(0.003)
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(30) == -signal.SIGKILL
    # The chief's next collective fails: it exits with one line saying what to do.
    assert chief.wait(60) == 1
    lines = chief.log.read_text().strip().splitlines()
    assert "lost a peer of the multi-worker run" in lines[-1] and "--resume" in lines[-1]
    kept = _latest_step(run_dir)
    assert 3 <= kept < STEPS, "the kill landed after the last step"

    for process in _workers(run_dir, "--resume"):
        _finished(process)
    assert _latest_step(run_dir) == STEPS
    # Every step's row once, as the uninterrupted single-device run logged them.
    _assert_same_run(
        read_metrics(run_dir / "metrics.csv"),
        read_metrics(single_run / "metrics.csv"),
        list(range(STEPS + 1)),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "needs TF_CONFIG"),
        ("{cluster", "not valid JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', 'a "task" object'),
        ('{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker"}}', "ps"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "worker 1"),
    ],
)
def test_bad_tf_config_is_one_clear_error(text, message):
    with pytest.raises(RunError, match=message):
        cluster_task(text)


def test_tf_config_names_the_task():
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    text = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    assert cluster_task(text) == ("worker", 1, cluster)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cpu_replicas": 2}, "--cpu-replicas"),
        ({"cpu_replicas": 2, "distribute": "multi-worker"}, "--cpu-replicas"),
        ({"distribute": "mirrored", "batch_norm": True}, "--batch-norm"),
        ({"distribute": "everywhere"}, "--distribute"),
    ],
)
def test_distribution_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)

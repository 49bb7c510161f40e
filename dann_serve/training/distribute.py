"""Where a run's steps execute: one device, or replicas under TensorFlow's tf.distribute.

``--distribute none`` runs the step as it is, with no strategy in the way. ``mirrored``
is a ``tf.distribute.MirroredStrategy`` over this machine's GPUs (or, with
``--cpu-replicas N`` on a machine without GPUs, over N logical CPU devices);
``multi-worker`` a ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines
``TF_CONFIG`` describes, one replica per GPU (or one per CPU-only worker).

What does not change with the strategy, so that the same seed gives the same run
and a checkpoint of any strategy resumes under any other:

- the data: every worker reads the same global stream of batches (one iterator, as
  on one device, checkpointed the same way) and each replica takes its slice of the
  batch's source half and of its target half;
- the global step, the schedules and the random shifts, drawn for the global batch;
- the losses: each replica computes its part of the global batch's loss
  (:class:`~dann_serve.training.losses.Replicas`), and the optimiser sums the
  replicas' gradients;
- the checkpoint: the same objects under the same names, whatever holds them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from dann_serve.config import TrainConfig
from dann_serve.training.losses import Replicas
from dann_serve.training.rundir import CHECKPOINTS, RunError

TASK_TYPES = ("chief", "worker")
LOST_PEER = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
)


@dataclass(frozen=True)
class Placement:
    """The strategy of this process (None: one device), and this process's role."""

    strategy: tf.distribute.Strategy | None = None
    workers: int = 1
    chief: bool = True  # writes the run directory
    task: str = ""  # "worker 1" in a cluster, "" alone
    devices: tuple[str, ...] = field(default_factory=tuple)

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy else 1

    @property
    def share(self) -> Replicas:
        return Replicas(self.replicas)

    def scope(self):
        """Where the model, optimiser and every checkpointed variable are created."""
        return self.strategy.scope() if self.strategy else nullcontext()

    def run(self, step: Callable, args: Sequence[tf.Tensor]) -> tuple[tf.Tensor, ...]:
        """``step(*args)`` on every replica (each given the whole global batch); the
        tensors it returns, summed over the replicas."""
        if self.strategy is None:
            return tuple(step(*args))
        per_replica = self.strategy.run(step, args=tuple(args))
        return tuple(
            self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for value in per_replica
        )

    def slice_of(self, rows: int) -> tuple[tf.Tensor | int, int]:
        """Inside ``step``: (first row, row count) of this replica's slice of ``rows``."""
        if self.strategy is None:
            return 0, rows
        size = rows // self.replicas
        return tf.distribute.get_replica_context().replica_id_in_sync_group * size, size

    def update(self, targets: Sequence, sources: Sequence, combine: Callable) -> None:
        """``target <- combine(target, source)`` pairwise, on every replica's copy from
        that replica's copy of ``source``, so that all copies stay identical."""
        if self.strategy is None:
            for target, source in zip(targets, sources, strict=True):
                target.assign(combine(target, source))
            return

        def assign(target: tf.Variable, source: tf.Tensor) -> tf.Operation:
            return target.assign(combine(target, source))

        for target, source in zip(targets, sources, strict=True):
            self.strategy.extended.update(
                _tensorflow_variable(target), assign, args=(_tensorflow_variable(source),)
            )

    def agree(self, value: int) -> int:
        """The chief's ``value``, on every worker: what one process decides from the
        files of the run directory, the others follow, whatever they saw there (the
        chief may be writing them). A collective: every worker calls it at the same
        point, and it returns once all have."""
        if self.workers == 1:
            return value

        def chief_only() -> tf.Tensor:
            first = tf.distribute.get_replica_context().replica_id_in_sync_group == 0
            return tf.constant(value if first else 0, tf.int64)

        assert self.strategy is not None  # several workers: a multi-worker strategy
        per_replica = self.strategy.run(chief_only)
        return int(self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))

    @contextmanager
    def peers_watched(self) -> Iterator[None]:
        """A peer of a multi-worker run lost (killed, restarted, unreachable) makes the
        collectives fail on every other worker: one RunError that says how to go on."""
        try:
            yield
        except LOST_PEER as error:
            if self.workers == 1:
                raise
            reason = str(error.message).strip().splitlines()[0]
            raise RunError(
                f"{self.task}: lost a peer of the multi-worker run ({reason}); start every "
                "worker again with --resume"
            ) from None

    def describe(self) -> dict:
        """What config.json records of where the run trained."""
        return {
            "replicas": self.replicas,
            "workers": self.workers,
            "task": self.task or None,
            "devices": list(self.devices),
        }

    @contextmanager
    def checkpoint_directory(self, run_dir: Path) -> Iterator[tuple[Path, int]]:
        """Where this process saves checkpoints, and how many it keeps.

        Every worker of a multi-worker run must save (the save may need its peers);
        only the chief's checkpoints are the run's, so the others write to a private
        temporary directory, emptied after each save by :meth:`discard`.
        """
        if self.chief:
            yield run_dir / CHECKPOINTS, 3
            return
        scratch = Path(tempfile.mkdtemp(prefix=f"dann-serve-{self.task.replace(' ', '-')}-"))
        try:
            yield scratch, 1
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def discard(self, directory: Path) -> None:
        """A non-chief worker's checkpoint just written, removed (see above)."""
        if not self.chief:
            for entry in directory.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _tensorflow_variable(variable: keras.Variable | tf.Variable) -> tf.Variable:
    """The tf.Variable (a distributed one under a strategy) a Keras variable wraps."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def placement(config: TrainConfig) -> Placement:
    """The placement of ``config.distribute`` and the check of the global batch."""
    chosen = _placement(config.distribute, config.cpu_replicas)
    if config.batch_size % (2 * chosen.replicas):
        raise RunError(
            f"--batch-size {config.batch_size} does not split over {chosen.replicas} "
            f"replicas: each replica takes an equal share of both halves, so it must be a "
            f"multiple of {2 * chosen.replicas}"
        )
    return chosen


@functools.cache
def _placement(distribute: str, cpu_replicas: int) -> Placement:
    """Made once per process: TensorFlow's devices and cluster are configured before it
    runs anything, and cannot change afterwards."""
    if distribute == "none":
        return Placement()
    if distribute == "multi-worker":
        task_type, index, cluster = cluster_task(os.environ.get("TF_CONFIG"))
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = sum(len(cluster.get(kind, [])) for kind in TASK_TYPES)
        chief = (task_type, index) == (("chief", 0) if "chief" in cluster else ("worker", 0))
        devices = tuple(strategy.extended.worker_devices)
        return Placement(strategy, workers, chief, f"{task_type} {index}", devices)
    cpus = _split_cpu(cpu_replicas) if cpu_replicas else None
    strategy = tf.distribute.MirroredStrategy(devices=cpus)
    return Placement(strategy, devices=tuple(strategy.extended.worker_devices))


def _split_cpu(count: int) -> list[str]:
    """``count`` logical CPU devices, set up before TensorFlow initialises its devices."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        raise RunError(
            f"--cpu-replicas is for machines without GPUs; this one has {len(gpus)}, "
            "which --distribute mirrored uses without it"
        )
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or []) != count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )
        except RuntimeError:
            raise RunError(
                "--cpu-replicas: TensorFlow's devices are already initialised in this "
                "process; the split must come first"
            ) from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def cluster_task(text: str | None) -> tuple[str, int, dict]:
    """This task's type and index, and the cluster, from TF_CONFIG's JSON text."""
    if not text:
        raise RunError(
            "--distribute multi-worker needs TF_CONFIG, the cluster as TensorFlow "
            'describes it: {"cluster": {"worker": ["host:port", ...]}, "task": '
            '{"type": "worker", "index": 0}} (a TFJob sets it in every pod)'
        )
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise RunError(f"TF_CONFIG is not valid JSON: {error}") from None
    cluster = document.get("cluster") if isinstance(document, dict) else None
    task = document.get("task") if isinstance(document, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise RunError('TF_CONFIG needs a "cluster" object and a "task" object')
    others = sorted(set(cluster) - set(TASK_TYPES))
    if others or not all(isinstance(cluster[kind], list) and cluster[kind] for kind in cluster):
        raise RunError(
            f"TF_CONFIG's cluster must list the addresses of chief and worker tasks only "
            f"(MultiWorkerMirroredStrategy), got {', '.join(map(str, cluster)) or 'none'}"
        )
    task_type, index = task.get("type"), task.get("index", 0)
    if (
        task_type not in cluster
        or not isinstance(index, int)
        or not 0 <= index < len(cluster[task_type])
    ):
        raise RunError(f"TF_CONFIG's task {task_type} {index} is not one of its cluster's")
    return str(task_type), index, cluster

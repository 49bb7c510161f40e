"""The options of a training run, validated once, saved as config.json."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path

# The training model's Keras dtype policy; variables, losses, the weight average and
# every export stay float32 (dann_serve.model.networks.build_model). "auto" is resolved
# when a run's options are made (native_precision) and never saved as such.
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# CPU flags (/proc/cpuinfo) of bfloat16 arithmetic in hardware: AVX512-BF16, AMX.
NATIVE_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# What an option meant in a config.json saved before the option existed.
FORMER_DEFAULTS = {"precision": "float32", "shift_ramp": False}
ARCHITECTURES = ("mnist", "svhn")
# How a run is spread over devices (dann_serve.training.distribute): one device, every
# GPU of this machine (or --cpu-replicas logical CPUs), or the machines of TF_CONFIG.
DISTRIBUTE = ("none", "mirrored", "multi-worker")
# Training steps of each reverse model in reverse validation
# (dann_serve.experiments.reverse_validation).
REVERSE_VALIDATION_STEPS = 1500
# Label-free criteria that rank the candidates of `train --select`
# (dann_serve.experiments.criteria); the cheap ones take seconds per run and are
# always recorded, reverse validation trains a model per run.
CHEAP_CRITERIA = ("dev", "snd", "entropy")
CRITERIA = (*CHEAP_CRITERIA, "reverse")
# Not a criterion: the guard of the selection (experiments.criteria.class_shift).
CLASS_SHIFT = "class_shift"
DEFAULT_CRITERION = "entropy"
# How `dann-serve adapt` starts the new run's weights (dann_serve.experiments.adaptation):
# from the parent's or at random, and its steps by start. The parent's weights already
# read digits, so a warm start needs fewer: on usps -> mnist adapted to mnist-texture
# images, warm at 300 steps scored by the criterion near fresh at 600 (docs/TRAINING.md).
# A far target needs more than 300 even warm: a textured source won back 43% of what
# the shift to colour textures took after 300 steps, 56% after 1,000 (docs/MONITORING.md).
ADAPT_STARTS = ("warm", "fresh")
DEFAULT_ADAPT_START = "warm"
DEFAULT_ADAPT_STEPS = {"warm": 1000, "fresh": 2000}
# The file `serve --capture-dir` writes in each version's folder, naming the model and
# version that answered its images: what `adapt` records as the parent version of a run
# adapted to that folder (the folder's path alone could be any user's `name/3`).
CAPTURE_MANIFEST = "capture.json"
# Options a resumed run may be given anew: where the data is, not what it is.
# Where the run executes is not what it trains: a checkpoint of any strategy resumes
# under any other, with the global batch, data and schedules unchanged.
RESUMABLE_OPTIONS = frozenset({"data_dir", "distribute", "cpu_replicas"})
# What named the method before --method did; a run that saved them predates it.
FORMER_METHOD_OPTIONS = ("mode", "conditional", "class_weighting")


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a run; saved as config.json and reloaded by --resume."""

    source: str = "fonts"
    target: str = "digits"
    # The adaptation method, by its registered name (dann_serve.training.methods); checked
    # where a run starts or is read, since this module imports nothing of the project.
    method: str = "dann"
    arch: str = "mnist"
    steps: int = 3000
    batch_size: int = 128
    seed: int = 0
    learning_rate: float = 0.01
    lr_alpha: float = 10.0
    lr_beta: float = 0.75
    momentum: float = 0.9
    gamma: float = 10.0
    lambda_max: float = 1.0
    information_weight: float = 1.0  # target entropy minus class spread (losses.py)
    batch_norm: bool = False
    augment: bool = True
    shift_ramp: bool = True  # the shifts grow in like lambda (training.augment.ShiftSchedule)
    grayscale: bool = True
    dark_background: bool = True
    weight_decay: float = 0.0
    clip_norm: float = 0.0
    average_decay: float = 0.998
    eval_every: int = 250
    data_dir: str | None = None
    source_test: str | None = None  # a labelled folder to test the source on
    target_test: str | None = None  # a labelled folder to test the target on
    skip_unreadable: bool = False
    distribute: str = "none"  # one of DISTRIBUTE
    cpu_replicas: int = 0  # mirrored without GPUs: logical CPU devices (0: one replica)
    precision: str = "auto"  # one of PRECISIONS: the training model's compute dtype

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"unknown --precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}"
            )
        if self.precision == "auto":  # what the run trains in is what it records
            # Each worker of a cluster would resolve it on its own CPU: float32 there.
            native = "float32" if self.distribute == "multi-worker" else native_precision()
            object.__setattr__(self, "precision", native)
        if self.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {self.steps}")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"--batch-size must be an even number >= 2, got {self.batch_size}")
        if not 0.0 <= self.average_decay < 1.0:
            raise ValueError(f"--average-decay must be in [0, 1), got {self.average_decay}")
        if self.clip_norm < 0.0:
            raise ValueError(f"--clip-norm must be >= 0 (0: no clipping), got {self.clip_norm}")
        if self.information_weight < 0.0:
            raise ValueError(f"--information-weight must be >= 0, got {self.information_weight}")
        if self.distribute not in DISTRIBUTE:
            raise ValueError(
                f"unknown --distribute {self.distribute!r}: choose one of {', '.join(DISTRIBUTE)}"
            )
        if self.cpu_replicas < 0 or (self.cpu_replicas and self.distribute != "mirrored"):
            raise ValueError(
                "--cpu-replicas N (N >= 1) splits this machine's CPU for --distribute mirrored"
            )
        if self.batch_norm and self.distribute != "none":
            raise ValueError(
                "--batch-norm trains on one device only: its batch statistics would be "
                "each replica's, not the global batch's"
            )
        if self.eval_every < 1:
            raise ValueError(f"--eval-every must be at least 1, got {self.eval_every}")

    def differences(self, given: dict) -> list[str]:
        """``--option saved -> given`` for each option in ``given`` that differs from
        this (saved) config, but for those that only say where things are or how to
        show them (:data:`RESUMABLE_OPTIONS`)."""
        saved = vars(self)
        return [
            f"--{name.replace('_', '-')} {saved[name]} -> {value}"
            for name, value in given.items()
            if name in saved and name not in RESUMABLE_OPTIONS and saved[name] != value
        ]

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The options a run saved. Options named by an older version (where ``mode``,
        ``conditional`` and ``class_weighting`` chose the method) are refused rather than
        read as the default method; an option the run predates is read as it trained
        (:data:`FORMER_DEFAULTS`: float32, the shifts at full size throughout)."""
        former = [name for name in FORMER_METHOD_OPTIONS if name in values]
        if former and "method" not in values:
            raise ValueError(
                f"saved by a dann-serve older than --method (it names {', '.join(former)}): "
                "train it again with --method, or read it with the version that wrote it"
            )
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**FORMER_DEFAULTS | {k: v for k, v in values.items() if k in known})


@functools.cache
def native_precision(
    cpuinfo: Path = Path("/proc/cpuinfo"), gpus: Path = Path("/proc/driver/nvidia/gpus")
) -> str:
    """What ``--precision auto`` trains in on this machine: ``mixed_bfloat16`` where an
    x86 CPU computes bfloat16 in hardware and trains alone, ``float32`` elsewhere.

    The same choice TensorFlow makes for float32 matmuls on GPUs with TensorFloat-32:
    the hardware's own reduced-precision arithmetic, with float32 variables. Here it
    made the training step 1.4x faster at the same accuracy (docs/SCALING.md). float32
    wherever that was not measured or would not hold: a CPU without those instructions
    (bfloat16 emulated, slower), oneDNN turned off (``TF_ENABLE_ONEDNN_OPTS=0``: the
    same), a machine with NVIDIA GPUs (the model trains there, not on the CPU), or
    flags that cannot be read.
    """
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" or (gpus.is_dir() and any(gpus.iterdir())):
        return "float32"
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "float32"
    for line in text.splitlines():
        if line.startswith("flags"):
            if NATIVE_BFLOAT16_FLAGS & set(line.partition(":")[2].split()):
                return "mixed_bfloat16"
            break
    return "float32"

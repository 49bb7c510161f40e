"""The tf.data streams hold a split's pixels once and give back exactly its arrays."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dann_serve.data import Split
from dann_serve.data.pipeline import ordered_batches, paired_batches
from dann_serve.training.augment import ShiftSchedule, training_batches

# Run in a fresh process: resident memory freed by earlier tests would hide growth.
MEASURE = """
import gc, numpy as np
from dann_serve.data import Split
from dann_serve.data.pipeline import paired_batches

def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096

def split(count):
    images = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    return Split(images, np.arange(count, dtype=np.int64) % 10)

next(iter(paired_batches(split(64), split(64), 32, 0)))  # TensorFlow's one-time set-up
source, target = split(24_000), split(8_000)
gc.collect()
before = resident()
next(iter(paired_batches(source, target, 128, 0)))
print((resident() - before) / (source.images.nbytes + target.images.nbytes))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
def test_the_training_stream_holds_the_pixels_once() -> None:
    # tf.constant(array) keeps its NumPy copy beside the tensor, and tf.data's default
    # rewrites serialise captured tensors into a new graph: 2.1x the pixels before.
    result = subprocess.run(
        [sys.executable, "-c", MEASURE], capture_output=True, text=True, check=True, timeout=300
    )
    growth = float(result.stdout.strip().splitlines()[-1])
    assert growth < 1.4, f"the stream grew the process by {growth:.2f}x its pixels"


def test_ordered_batches_give_the_split_in_order() -> None:
    images = np.random.default_rng(0).integers(0, 256, (1234, 32, 32, 3), dtype=np.uint8)
    split = Split(images, np.arange(1234, dtype=np.int64) % 10)
    batches = list(ordered_batches(split, batch_size=500))
    assert [len(labels) for _, labels in batches] == [500, 500, 234]
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in batches]), split.images)
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in batches]), split.labels)


def test_no_stream_runs_the_autotuner() -> None:
    # Its thread per iterator sleeps up to a minute between rounds, and an iterator
    # destroyed at interpreter exit waits for it: a process holding six training
    # streams took 16-20 s to exit, a test session minutes.
    split = Split(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8, dtype=np.int64))
    streams = {
        "training": training_batches(
            paired_batches(split, split, 4, 0), seed=0, shift=ShiftSchedule(total_steps=1)
        ),
        "evaluation": ordered_batches(split, 4),
    }
    for name, stream in streams.items():
        assert stream.options().autotune.enabled is False, name

"""The process and its environment: TensorFlow without its start-up chatter, a reusing
allocator, and the versions of the packages it runs on.

TensorFlow's C++ side writes several lines straight to file descriptor 2 while it
imports and looks for GPUs (oneDNN notices, "could not find cuda drivers", a
cuInit error on every CPU-only machine), before any Python logging setting can
reach it. The commands load TensorFlow through :func:`load_tensorflow`, which
sends those lines to a scratch file and replays them only if loading fails.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# What a training run's config.json records; the export adds its converters, and the
# benchmarks their own list (bench/_common.py).
TRAINING_PACKAGES = ("dann-serve", "tensorflow", "keras", "numpy", "pillow", "scikit-learn")
EXPORT_PACKAGES = (*TRAINING_PACKAGES, "tf2onnx", "onnx", "onnxruntime")


def package_versions(names: Iterable[str] = TRAINING_PACKAGES) -> dict[str, str]:
    """Python's version and each installed package's among ``names``, read from the
    package metadata (nothing is imported); a package not installed is left out."""
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Redirect fd 2 for the duration; replay what was written if the block raises."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. under a test runner)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def load_tensorflow() -> None:
    """Import TensorFlow and probe its devices once, quietly."""
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()


# mallopt parameters of glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def reuse_large_buffers(largest: int = 64 << 20) -> bool:
    """Keep big freed blocks in the heap, so the next request reuses their pages.

    A batch of 256 images is a 3 MB message, copied a few times on its way to the
    model. glibc hands each such block out with a fresh ``mmap`` and returns it on
    free, so every copy first page-faults its 3 MB in again: measured here (a
    virtual machine, where faults are dear), building one such TensorProto took
    3-5 ms instead of 0.15 ms. Raising the mmap and trim thresholds makes those
    blocks ordinary, reused heap memory; TensorFlow Serving gets the same effect by
    linking tcmalloc. Returns False where glibc is not the allocator.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, largest)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, 4 * largest)
        )
    except (OSError, AttributeError):
        return False

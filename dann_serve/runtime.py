"""Start TensorFlow without its native start-up chatter on the user's terminal.

TensorFlow's C++ side writes several lines straight to file descriptor 2 while it
imports and looks for GPUs (oneDNN notices, "could not find cuda drivers", a
cuInit error on every CPU-only machine), before any Python logging setting can
reach it. The commands load TensorFlow through :func:`load_tensorflow`, which
sends those lines to a scratch file and replays them only if loading fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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

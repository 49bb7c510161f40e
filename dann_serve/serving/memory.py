"""Hand freed memory back to the system after a large request.

``runtime.reuse_large_buffers`` makes glibc keep freed blocks of up to 64 MB in its
heaps (each thread that allocates has an arena of its own: the REST and gRPC workers,
TensorFlow's), so that the next request of the usual size reuses their pages instead
of faulting in fresh ones. After a request far larger than the usual ones that would
keep hundreds of megabytes per arena for good, so the front ends call
:func:`release_soon` after each large request: a moment later, once the request's
message, its parsed JSON and any error's traceback are gone too, glibc's
``malloc_trim`` returns the free pages of every arena. It takes milliseconds, next to
the seconds such a request takes.
"""

from __future__ import annotations

import ctypes
import threading
import time

# How long after a large request the trim waits, so that what the request left
# (its message in grpcio, its body in the event loop) has been freed first; large
# requests close together share one trim.
SETTLE_SECONDS = 0.3

_requested = threading.Event()
_start_lock = threading.Lock()
_thread: threading.Thread | None = None


def _malloc_trim():
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


_M_ARENA_MAX = -8  # glibc's malloc.h


def one_heap() -> bool:
    """Make every thread allocate from glibc's main heap (``M_ARENA_MAX`` 1); call it
    before the threads start. glibc gives each allocating thread an arena of its own,
    and ``malloc_trim`` cannot return the free top of any arena but the main one, so
    with the default every thread that once held a large request (event loop, workers,
    TensorFlow's) kept up to 64 MB for good. Measured here, one heap costs no speed:
    the time goes to the model, not to malloc's locks. False where glibc is not the
    allocator."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 1))
    except (OSError, AttributeError):
        return False


def release_free_memory() -> bool:
    """Return the free pages of every malloc arena to the system now; False off glibc."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def _trimmer() -> None:
    while True:
        _requested.wait()
        # Wait until the large requests have stopped coming for a moment.
        while _requested.is_set():
            _requested.clear()
            time.sleep(SETTLE_SECONDS)
        release_free_memory()


def release_soon() -> None:
    """Trim the heaps shortly, in a thread of their own (started on first use)."""
    global _thread
    with _start_lock:
        if _thread is None:
            _thread = threading.Thread(target=_trimmer, name="malloc-trim", daemon=True)
            _thread.start()
    _requested.set()

"""Hand freed memory back to the system once requests pause.

``runtime.reuse_large_buffers`` makes glibc keep freed blocks of up to 64 MB in its
heap, so that the next request of the usual size reuses their pages instead of
faulting in fresh ones. After requests far larger than the usual ones (a batch of
1,024 images, a 2048x2048 PNG, a 60 MB JSON body) that would keep hundreds of
megabytes for good. A request's message is no guide to what it makes the server hold:
a 3 MB batch of uint8 images runs through 100 MB of activations, a 5 MB PNG decodes
to 32 MB. So the front ends call :func:`release_soon` after every request, and a
thread of its own, once requests have paused for a moment, asks glibc how much of its
heap is free and, past ``TRIM_FREE_BYTES``, returns it (``malloc_trim``, milliseconds).
Under steady traffic nothing is trimmed: the pause never comes.
"""

from __future__ import annotations

import ctypes
import threading
import time

# How long requests must pause before the heap is looked at, so that what the last
# request left (its message, its body in the event loop) has been freed first.
SETTLE_SECONDS = 0.3
# Free heap bytes worth returning: a few batches' worth, well above what the usual
# small requests leave free between them.
TRIM_FREE_BYTES = 32 * 1024 * 1024

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


class _MallInfo2(ctypes.Structure):
    _fields_ = [  # glibc's struct mallinfo2: ten size_t, in bytes or counts
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def free_heap_bytes() -> int | None:
    """Bytes glibc's heaps hold free (``mallinfo2().fordblks``); None off glibc 2.33+."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    return int(mallinfo2().fordblks)


def _trimmer() -> None:
    while True:
        _requested.wait()
        # Wait until the requests have stopped coming for a moment.
        while _requested.is_set():
            _requested.clear()
            time.sleep(SETTLE_SECONDS)
        free = free_heap_bytes()
        if free is None or free >= TRIM_FREE_BYTES:
            release_free_memory()


def release_soon() -> None:
    """After a request (or an unload): once requests pause, trim the heap if much of it
    is free. Cheap enough for every request: it sets an event; the looking and trimming
    happen in a thread of their own (started on first use)."""
    global _thread
    with _start_lock:
        if _thread is None:
            _thread = threading.Thread(target=_trimmer, name="malloc-trim", daemon=True)
            _thread.start()
    _requested.set()

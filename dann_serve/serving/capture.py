"""Capture: a random sample of the images a server answers, kept as files under
``DIR/<name>/<version>/``, a folder ``dann-serve train --target`` reads as it is.

Which images: those sent to the signatures answering the digit (``predict_label``,
its ``serving_default`` alias, ``predict_label_uint8``, ``predict_image``), never
``classify_domain``'s: a client asking both questions of one image would have it kept
twice, and the domain question is a diagnosis, not the traffic a model is adapted to.

What is kept: an encoded file (``predict_image``) byte for byte, named by its format's
magic bytes; pixels (float32 in [0, 1] or uint8) as the client's own PNG
(:func:`dann_client.png.encode_png`), marked as the model's input laid out
already, so that reading the folder back gives these very 32x32 inputs, not reframed.

Each version's folder holds ``capture.json``, written once: the model and version that
answered its images (``adapt`` records them as its run's parent version).

Names are ``<UTC time>-<uuid4>.<ext>``: sorted by name is sorted by time, and 122
random bits need no coordination between replicas sharing a volume, where a host name
and a process id would clash (a restarted container keeps both).

The bound ``--capture-max-images`` is per model version, each version's folder being
one target set: a new version starts with room of its own; old versions' folders go
when their models do. A writer counts the images already in a folder before its
first write and again every :data:`RECOUNT_SECONDS`, so a restart does not exceed the
bound, replicas sharing the folder overshoot it by at most what they write in that
time, and emptying a full folder lets capture resume without a restart.

Off the request path: :meth:`Capture.observe` draws which images to keep, copies just
those and hands them to a queue bounded in bytes; a full queue drops them and counts
(``dann_serve_capture_dropped_total``). One thread encodes and writes, within
:data:`WRITER_CPU_SHARE` of one core: on a busy server capture keeps fewer images
rather than slowing the requests. Each file is written owner-only (folders 0700,
files 0600) as ``<name>.tmp`` (no image suffix: a folder reader skips it) and renamed,
so a reader never sees part of one. A write that fails (full disk, unwritable folder)
counts ``dann_serve_capture_errors_total{reason}`` and logs one line when that kind of
failure starts (not per image) and one when writing works again; capture keeps trying,
since space freed or a folder fixed should need no restart, and a failed write costs
the writer thread, never a request.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dann_client.contract import INPUT_NAME, MIB, PREDICT_LABEL, SIGNATURE_TABLE
from dann_client.png import encode_png
from dann_client.preprocessing import IMAGE_EXTENSIONS
from dann_serve.config import CAPTURE_MANIFEST
from dann_serve.files import write_atomically
from dann_serve.serving import observers
from dann_serve.serving.images import image_kind
from dann_serve.serving.limits import DEFAULT_CAPTURE_MAX_IMAGES, DEFAULT_CAPTURE_RATE
from dann_serve.serving.monitoring import CAPTURE_DROPPED, CAPTURE_ERRORS, CAPTURE_IMAGES
from dann_serve.serving.observers import Served

log = logging.getLogger("dann_serve.serving")

MAX_PENDING_BYTES = 32 * MIB  # sampled images waiting for the writer
WRITER_CPU_SHARE = 0.05  # of one core: ~300 images/s, a 3,000 images/s server's 1 in 10
WRITER_BURST_SECONDS = 0.05  # CPU time the writer may spend at once after a pause
RECOUNT_SECONDS = 10.0
FOLDER_MODE, FILE_MODE = 0o700, 0o600
CAPTURED_SIGNATURES = frozenset(
    name
    for row in SIGNATURE_TABLE
    if row.answers_as == PREDICT_LABEL
    for name in (row.name, *row.aliases)
)
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp"}
DISK_FULL, UNWRITABLE, IO_ERROR = "disk_full", "unwritable", "io_error"
_REASONS = {
    errno.ENOSPC: DISK_FULL,
    errno.EDQUOT: DISK_FULL,
    errno.EACCES: UNWRITABLE,
    errno.EPERM: UNWRITABLE,
    errno.EROFS: UNWRITABLE,
    errno.ENOTDIR: UNWRITABLE,
    errno.EEXIST: UNWRITABLE,  # a file where the model's or version's folder should be
    errno.EISDIR: UNWRITABLE,
}


@dataclass(frozen=True)
class CaptureOptions:
    folder: Path
    rate: float = DEFAULT_CAPTURE_RATE  # in (0, 1]: the chance each served image is kept
    max_images: int = DEFAULT_CAPTURE_MAX_IMAGES  # per model version
    seed: int | None = None  # None: drawn from the OS, so replicas sample independently


def prepare_folder(folder: Path) -> None:
    """Create the capture folder (owner-only) if needed and check that it can be written
    into; ``OSError`` with a one-line message naming it if not."""
    try:
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"--capture-dir {folder}: cannot create it: {error.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OSError(f"--capture-dir {folder}: cannot write into it: permission denied")


def count_images(folder: Path) -> int:
    """Image files in ``folder`` as a folder reader lists them (hidden ones are not)."""
    try:
        with os.scandir(folder) as entries:
            return sum(
                1
                for entry in entries
                if not entry.name.startswith(".")
                and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS
            )
    except OSError:  # not made yet, or not a folder: the write will say why
        return 0


def as_pixels(images: np.ndarray) -> np.ndarray:
    """A tensor input's images as uint8 pixels: float32 in [0, 1] rounded back to the
    levels a client divided by 255 (other floats are quantised to them)."""
    if images.dtype == np.uint8:
        return images
    scaled = np.rint(np.nan_to_num(images.astype(np.float32)) * 255.0)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def as_file(image: object) -> tuple[bytes, str]:
    """One sampled image (an encoded file, or uint8 pixels) as file bytes and extension."""
    if isinstance(image, bytes):
        return image, EXTENSIONS.get(image_kind(image) or "", ".bin")
    return encode_png(np.asarray(image)), ".png"


@dataclass(frozen=True)
class _Sample:
    model: str
    version: int
    images: np.ndarray  # encoded files (an object array of bytes), or pixels [n, 32, 32, 3]
    nbytes: int


class _Pending:
    """A queue bounded by the bytes it holds: the request path never waits on it."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.held, self.closed = max_bytes, 0, False
        self._items: deque[_Sample] = deque()
        self._ready = threading.Condition()

    def put(self, sample: _Sample) -> bool:
        with self._ready:
            if self.held + sample.nbytes > self.max_bytes:
                return False
            self.held += sample.nbytes
            self._items.append(sample)
            self._ready.notify()
            return True

    def close(self) -> None:
        """No more samples: ``get`` hands out those queued, then None at once."""
        with self._ready:
            self.closed = True
            self._ready.notify()

    def get(self, timeout: float) -> _Sample | None:
        """The next sample; None if none came within ``timeout`` or the queue is closed
        and empty."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._items or self.closed, timeout):
                return None
            if not self._items:
                return None
            sample = self._items.popleft()
            self.held -= sample.nbytes
            return sample


class _CpuBudget:
    """The writer's CPU time within a share of one core, a token bucket on the thread's
    own CPU clock: past the share it waits, and what its full queue cannot take is
    dropped and counted, so capture keeps fewer images, never slows serving."""

    def __init__(self, share: float, burst: float) -> None:
        self.share, self.burst, self.tokens = share, burst, burst
        self.cpu, self.wall = time.thread_time(), time.monotonic()

    def begin(self) -> None:
        """Work starts: what the thread used waiting for it (polling) is not charged."""
        self.cpu = time.thread_time()

    def spend(self) -> None:
        """Charge the CPU the thread used since :meth:`begin`; wait if over budget."""
        cpu, wall = time.thread_time(), time.monotonic()
        earned = (wall - self.wall) * self.share
        self.tokens = min(self.burst, self.tokens + earned) - (cpu - self.cpu)
        self.cpu, self.wall = cpu, wall
        if self.tokens < 0:
            time.sleep(-self.tokens / self.share)


class _Failures:
    """One log line when a kind of failure starts, one when writing works again."""

    def __init__(self) -> None:
        self.failing: set[str] = set()

    def failed(self, reason: str, error: OSError, path: Path) -> None:
        CAPTURE_ERRORS.labels(reason).inc()
        if reason not in self.failing:
            self.failing.add(reason)
            log.warning(
                "capture: cannot write images under %s (%s: %s); counted in"
                " dann_serve_capture_errors_total, requests answered all the same,"
                " capture tries again with each image",
                path,
                reason,
                error.strerror or error,
            )

    def succeeded(self, folder: Path) -> None:
        if self.failing:
            log.info("capture: writing under %s again", folder)
            self.failing.clear()


class _Folder:
    """One version's folder: how many images it holds, recounted now and then."""

    def __init__(self, path: Path, max_images: int) -> None:
        self.path, self.max_images = path, max_images
        self.count, self.made = 0, False
        self.counted_at: float | None = None

    def has_room(self, now: float) -> bool:
        if self.counted_at is None or now - self.counted_at >= RECOUNT_SECONDS:
            self.count, self.counted_at = count_images(self.path), now
        return self.count < self.max_images

    def make(self) -> None:
        """The capture folder (made again if it went), the model's, the version's, and
        the version's manifest (:data:`CAPTURE_MANIFEST`) if it has none yet."""
        for level in (self.path.parent.parent, self.path.parent, self.path):
            try:
                level.mkdir(mode=FOLDER_MODE)
            except FileExistsError:
                if not level.is_dir():
                    raise
        manifest = self.path / CAPTURE_MANIFEST
        if not manifest.exists():
            record = {"model": self.path.parent.name, "version": int(self.path.name)}
            try:
                write_atomically(manifest, json.dumps(record) + "\n", mode=FILE_MODE)
            except OSError:
                if not manifest.exists():  # another replica's rename is as good as ours
                    raise
        self.made = True


class Capture:
    """The observer: samples on the request path, writes on a thread of its own."""

    def __init__(self, options: CaptureOptions) -> None:
        self.options = options
        self._rng = np.random.default_rng(options.seed)
        self._pending = _Pending(MAX_PENDING_BYTES)
        self._folders: dict[tuple[str, int], _Folder] = {}
        self._full: set[tuple[str, int]] = set()  # read on the request path, no lock
        self._failures = _Failures()
        self._checked_full = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        for reason in (DISK_FULL, UNWRITABLE, IO_ERROR):
            CAPTURE_ERRORS.labels(reason)  # shown at 0 from the start, for rate()

    def start(self) -> Capture:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout`` seconds) and end the writer."""
        self._pending.close()
        self._thread.join(timeout)

    def observe(self, served: Served) -> None:
        if served.signature not in CAPTURED_SIGNATURES:
            return
        if (served.model, served.version) in self._full:
            return
        images = served.inputs.get(INPUT_NAME)
        if images is None or not images.ndim or not len(images):
            return
        chosen = np.flatnonzero(self._rng.random(len(images)) < self.options.rate)
        if not chosen.size:
            return
        kept = images[chosen]  # a copy: the request's arrays are not held
        nbytes = sum(len(item) for item in kept) if kept.dtype == object else kept.nbytes
        if not self._pending.put(_Sample(served.model, served.version, kept, nbytes)):
            CAPTURE_DROPPED.inc(len(kept))

    # -- the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        budget = _CpuBudget(WRITER_CPU_SHARE, WRITER_BURST_SECONDS)
        while True:
            sample = self._pending.get(timeout=RECOUNT_SECONDS)
            if sample is not None:
                budget.begin()
                try:
                    self._write(sample)
                except Exception:  # the writer must outlive any one image
                    CAPTURE_ERRORS.labels(IO_ERROR).inc(len(sample.images))
                    log.exception("capture: an image could not be kept")
                budget.spend()
            elif self._pending.closed:
                return
            if time.monotonic() - self._checked_full >= RECOUNT_SECONDS:
                self._recheck_full()

    def _folder(self, model: str, version: int) -> _Folder:
        key = (model, version)
        if key not in self._folders:
            path = self.options.folder / model / str(version)
            self._folders[key] = _Folder(path, self.options.max_images)
        return self._folders[key]

    def _write(self, sample: _Sample) -> None:
        if not _plain_name(sample.model):  # never a path out of the capture folder
            if (sample.model, sample.version) not in self._full:
                self._full.add((sample.model, sample.version))
                log.warning("capture: model name %r is no folder name; not kept", sample.model)
            return
        folder = self._folder(sample.model, sample.version)
        images = sample.images if sample.images.dtype == object else as_pixels(sample.images)
        for image in images:
            if not folder.has_room(time.monotonic()):
                self._now_full(sample.model, sample.version, folder)
                return
            try:
                if not folder.made:
                    folder.make()
                data, extension = as_file(image)
                name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex}"
                write_atomically(folder.path / f"{name}{extension}", data, mode=FILE_MODE)
            except OSError as error:
                if error.errno == errno.ENOENT:  # the folder went: made again for the next
                    folder.made = False
                reason = _REASONS.get(error.errno or 0, IO_ERROR)
                self._failures.failed(reason, error, folder.path)
                continue
            folder.count += 1
            CAPTURE_IMAGES.labels(sample.model, str(sample.version)).inc()
            self._failures.succeeded(folder.path)

    def _now_full(self, model: str, version: int, folder: _Folder) -> None:
        if (model, version) not in self._full:
            self._full.add((model, version))
            log.info(
                "capture: %s holds %d images, --capture-max-images; no more are kept"
                " until some are removed",
                folder.path,
                folder.count,
            )

    def _recheck_full(self) -> None:
        """Full folders that have room again (images removed) take images again."""
        now = self._checked_full = time.monotonic()
        for key in list(self._full):
            folder = self._folders.get(key)  # none for a model name that is no folder name
            if folder is not None and folder.has_room(now):
                self._full.discard(key)
                log.info("capture: %s has room again", folder.path)


def _plain_name(name: str) -> bool:
    return bool(name) and os.sep not in name and "/" not in name and not name.startswith(".")


def start_capture(options: CaptureOptions) -> Capture:
    """Prepare the folder, start the writer and register the observer (at start-up,
    before the front ends listen). ``OSError`` with a one-line message if the folder
    cannot be made or written into."""
    prepare_folder(options.folder)
    capture = Capture(options).start()
    observers.add(capture)
    log.info(
        "capturing about %g of the images served by the label signatures into %s"
        " (at most %d per model version)",
        options.rate,
        options.folder,
        options.max_images,
    )
    return capture

"""The live monitor: per served model version, a sliding window of what it answered,
held to the reference its export recorded (:mod:`dann_serve.drift`).

Off the request path by construction. :meth:`LiveMonitor.observe`, called on every
answered prediction, only puts the answer's probabilities into a bounded queue and
returns; when the queue is full the answer is dropped and counted, never waited for.
One daemon thread drains the queue into the windows every 50 ms (the answers of one
version as one batch), and once a second takes the verdict of each window with new
answers, logging a line when a version's drift verdict changes. The figures themselves
are computed when asked for: ``GET /v1/models/<name>[/versions/<v>]/monitor`` and the
metrics page.

Only answers with ``probabilities`` of shape ``(n, 10)`` count: ``predict_label`` and
its twins, not ``classify_domain`` (two domain probabilities), nor a request whose
output filter left the probabilities out. Versions come and go: a window is made with
a version's first answer or question, and forgotten once the version is no longer
served or was replaced on disk under the same number.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from tensorflow_serving.apis import get_model_status_pb2

from dann_client.contract import NUM_CLASSES, PROBABILITIES_OUTPUT
from dann_serve.drift import reference as references
from dann_serve.drift.window import CAPACITY, Window
from dann_serve.serving import monitoring, observers
from dann_serve.serving.observers import Served
from dann_serve.serving.registry import LoadedVersion, ModelRegistry
from dann_serve.serving.status import ServingError, not_found

log = logging.getLogger("dann_serve.serving")

# Answers (requests, not images) waiting for the worker: at the largest batch a
# thousand of them hold 40 MB of probabilities; emptied every DRAIN_SECONDS, the queue
# fills only past 20,000 answers a second, or when the worker is starved of CPU.
QUEUE_SIZE = 1000
REVIEW_SECONDS = 1.0  # how often the worker takes the verdict of versions with new answers
# How often the worker empties the queue: the answers of 50 ms go into each window as one
# batch (one copy and one lock), where waking up for every answer would take the
# interpreter's lock from the request threads thousands of times a second at batch 1.
DRAIN_SECONDS = 0.05
AVAILABLE = get_model_status_pb2.ModelVersionStatus.State.AVAILABLE

Key = tuple[str, int]  # (model, version)


@dataclass
class _Tracked:
    """One version's window, the load it belongs to, and its last logged verdict."""

    window: Window
    identity: int  # the LoadedVersion's, so that a version replaced on disk starts afresh
    shifted: bool = False
    fresh: bool = False  # answers added since the last verdict


class LiveMonitor:
    """The windows of every served version of ``registry`` (``capacity`` images each)."""

    def __init__(
        self,
        registry: ModelRegistry,
        capacity: int = CAPACITY,
        queue_size: int = QUEUE_SIZE,
        review_seconds: float = REVIEW_SECONDS,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"--monitor-window: at least 1 image, got {capacity}")
        self.registry = registry
        self.capacity = capacity
        self.review_seconds = review_seconds
        self._queue: queue.Queue[tuple[str, int, np.ndarray]] = queue.Queue(queue_size)
        self._tracked: dict[Key, _Tracked] = {}
        self._dropped: dict[Key, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- on the request path: enqueue and return ---------------------------------

    def observe(self, served: Served) -> None:
        rows = served.outputs.get(PROBABILITIES_OUTPUT)
        if rows is None or rows.ndim != 2 or rows.shape[1] != NUM_CLASSES:
            return
        try:
            self._queue.put_nowait((served.model, served.version, rows))
        except queue.Full:
            with self._lock:
                self._dropped[(served.model, served.version)] += 1

    # -- the worker ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="live-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        reviewed = time.monotonic()
        while not self._stop.wait(DRAIN_SECONDS):
            try:
                self.drain()
                if time.monotonic() - reviewed >= self.review_seconds:
                    reviewed = time.monotonic()
                    self.review()
            except Exception:  # the monitor must outlive any one bad answer
                log.exception("live monitor: a step failed; monitoring goes on")

    def drain(self) -> int:
        """Move the queued answers into their versions' windows; how many were moved
        (at most a queue's worth, so that a flood cannot keep the worker from reviews)."""
        batches: dict[Key, list[np.ndarray]] = defaultdict(list)
        moved = 0
        while moved < self._queue.maxsize:
            try:
                model, version, rows = self._queue.get_nowait()
            except queue.Empty:
                break
            batches[(model, version)].append(rows)
            moved += 1
        for key, parts in batches.items():
            self._add(key, np.concatenate(parts))
        return moved

    def _add(self, key: Key, rows: np.ndarray) -> None:
        tracked = self._find(key)
        if tracked is None:
            return  # no longer served
        rows = rows[np.isfinite(rows).all(axis=1)]  # NaN in, NaN out: no answer to judge
        try:
            tracked.window.add(rows)
        except ValueError as error:
            log.warning("live monitor: %s version %d: answers left out: %s", *key, error)
            return
        tracked.fresh = True

    def review(self) -> None:
        """Forget the windows of versions no longer served; take the verdict of those
        with new answers, logging a line when it changed."""
        with self._lock:
            tracked = list(self._tracked.items())
        for key, entry in tracked:
            loaded = self._loaded(key)
            if loaded is None or loaded.identity != entry.identity:
                with self._lock:
                    if self._tracked.get(key) is entry:
                        del self._tracked[key]
                continue
            if not entry.fresh:
                continue
            entry.fresh = False
            snapshot = entry.window.snapshot()
            if snapshot.drift is None or snapshot.drift.shifted == entry.shifted:
                continue
            entry.shifted = snapshot.drift.shifted
            log.log(
                logging.WARNING if entry.shifted else logging.INFO,
                "monitor: %s version %d is %s (drift p-value %.3g over %d images)",
                *key,
                "SHIFTED from its reference" if entry.shifted else "no longer shifted",
                snapshot.drift.p_value,
                snapshot.images,
            )

    # -- windows --------------------------------------------------------------------

    def _loaded(self, key: Key) -> LoadedVersion | None:
        try:
            return self.registry.get(*key)
        except ServingError:
            return None

    def _find(self, key: Key) -> _Tracked | None:
        """The window of a served version, made with its reference on first need."""
        with self._lock:
            found = self._tracked.get(key)
        if found is not None:
            return found
        loaded = self._loaded(key)
        if loaded is None:
            return None
        made = _Tracked(Window(_reference(loaded), self.capacity), loaded.identity)
        with self._lock:
            return self._tracked.setdefault(key, made)

    # -- what the routes and the metrics page read ------------------------------------

    def version_json(self, model: str, version: int) -> dict:
        """The monitor's figures for one served version; NOT_FOUND if it is not served."""
        tracked = self._find((model, version))
        if tracked is None:  # worded as a request for it is answered
            raise not_found(f"Servable not found for request: Specific({model}, {version})")
        with self._lock:
            dropped = self._dropped.get((model, version), 0)
        return {
            "model": model,
            "version": version,
            **tracked.window.snapshot().to_json(),
            "window": self.capacity,
            "reference": tracked.window.reference is not None,
            "dropped": dropped,
        }

    def model_json(self, model: str) -> dict:
        """The figures of every served version of ``model``, newest first."""
        versions = []
        for version, state, _ in self.registry.status(model):
            if state != AVAILABLE:
                continue
            try:
                versions.append(self.version_json(model, version))
            except ServingError:
                continue  # unloaded since the status was read
        return {"model": model, "versions": versions}

    def dropped(self) -> dict[Key, int]:
        with self._lock:
            return dict(self._dropped)


def _reference(loaded: LoadedVersion) -> references.Reference | None:
    """The reference exported with ``loaded``; None (and a log line) if it has none."""
    path = loaded.path / references.VERSION_PATH
    if not path.is_file():
        log.warning(
            "monitor: %s version %d has no %s (exported without it): no accuracy estimate "
            "and no drift test for it",
            loaded.name,
            loaded.version,
            references.VERSION_PATH,
        )
        return None
    try:
        return references.load(path)
    except ValueError as error:
        log.warning(
            "monitor: %s version %d: unreadable reference: %s", loaded.name, loaded.version, error
        )
        return None


# -- the one monitor of this process ------------------------------------------------------

_ACTIVE: LiveMonitor | None = None


def start(registry: ModelRegistry, capacity: int = CAPACITY) -> LiveMonitor:
    """Start the monitor of ``registry`` and show it every answered prediction."""
    global _ACTIVE
    monitor = LiveMonitor(registry, capacity)
    monitor.start()
    observers.add(monitor)
    _ACTIVE = monitor
    return monitor


def stop() -> None:
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.stop()
    _ACTIVE = None


def current() -> LiveMonitor:
    """The running monitor; FAILED_PRECONDITION when the server runs without one."""
    if _ACTIVE is None:
        raise ServingError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "the monitor is off (dann-serve serve was started with --no-monitor)",
        )
    return _ACTIVE


# -- Prometheus ----------------------------------------------------------------------------

_GAUGES = {
    "images": "Images in the version's monitor window.",
    "mean_confidence": "Mean top-class probability over the window.",
    "estimated_accuracy": "ATC's accuracy estimate over the window (absent: none).",
    "estimate_reliable": "1 if the accuracy estimate may be trusted, else 0.",
    "drift_p_value": "Bonferroni-adjusted p-value of the drift test (absent: no reference).",
    "drift_shifted": "1 if the window is shifted from the export's reference, else 0.",
}
_SHARE = "class_share_"  # one gauge per class: the contract labels by model and version only


class MonitorCollector(Collector):
    """The monitor's figures as gauges labelled ``model_name`` and ``version`` only,
    and the answers dropped on a full queue as a counter."""

    def collect(self) -> Iterator[Metric]:
        monitor = _ACTIVE
        if monitor is None:
            return
        labels = ["model_name", "version"]
        names = [*_GAUGES, *(f"{_SHARE}{digit}" for digit in range(NUM_CLASSES))]
        families = {
            name: GaugeMetricFamily(
                f"dann_serve_monitor_{name}",
                _GAUGES.get(name, f"Share of the window predicted as {name[len(_SHARE) :]}."),
                labels=labels,
            )
            for name in names
        }
        for model in monitor.registry.model_names():
            try:
                versions = monitor.model_json(model)["versions"]
            except ServingError:
                continue
            for figures in versions:
                _add_samples(families, figures)
        yield from families.values()
        dropped = CounterMetricFamily(
            "dann_serve_monitor_dropped",
            "Answers left out of the monitor because its queue was full.",
            labels=labels,
        )
        for (model, version), count in sorted(monitor.dropped().items()):
            dropped.add_metric([model, str(version)], count)
        yield dropped


def _add_samples(families: dict[str, GaugeMetricFamily], figures: dict) -> None:
    values = {
        "images": figures["images"],
        "mean_confidence": figures["mean_confidence"],
        "estimated_accuracy": figures["estimated_accuracy"],
        "estimate_reliable": float(figures["estimate_reliable"]),
        "drift_p_value": figures["drift"]["p_value"],
        "drift_shifted": float(figures["drift"]["shifted"]),
        **{f"{_SHARE}{i}": share for i, share in enumerate(figures["class_shares"])},
    }
    labels = [figures["model"], str(figures["version"])]
    for name, value in values.items():
        if value is not None:  # an unknown figure is an absent sample, not a made-up 0
            families[name].add_metric(labels, float(value))


monitoring.REGISTRY.register(MonitorCollector())

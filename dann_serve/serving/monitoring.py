"""What the local server tells about itself: Prometheus metrics and the access log.

Production runs TensorFlow Serving, so the metrics carry TensorFlow Serving's names
and labels where it has them (its exporter turns ``/tensorflow/serving/request_count``
into ``:tensorflow:serving:request_count``); a dashboard or an alert written against
one server reads the other. Latencies are in microseconds with its buckets (10 us
times 1.8^i, 33 of them). Its counters are printed under their exact names, without
the ``_total`` prometheus_client would add to a counter, so they are declared untyped.
The project's own series, which TensorFlow Serving has no name for, follow
Prometheus' conventions under ``dann_serve_``.

Every request is one :class:`Call`. The front end's transport opens it (the gRPC
call runner, the HTTP server) and closes it with :func:`finish`, which counts it and
writes its access-log line; in between, the shared core (``service``, the registry)
notes on it what only the core knows: the API, the model, the version, the signature,
the canonical status. One place counts, whichever protocol carried the request.

A model name the server does not serve is counted as ``model_name=""``, so clients
cannot create series at will; the access log shows the name asked for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from tensorflow_serving.apis import get_model_status_pb2

from dann_serve.serving.logs import ACCESS_LOGGER
from dann_serve.serving.status import ServingError

PREDICT, GET_MODEL_METADATA, GET_MODEL_STATUS = "Predict", "GetModelMetadata", "GetModelStatus"
GRPC, REST = "GRPC", "REST"  # TensorFlow Serving's "entrypoint" label values
# TensorFlow Serving's Buckets::Exponential(10, 1.8, 33), in microseconds (~20 minutes).
LATENCY_BUCKETS_US = tuple(round(10 * 1.8**power, 3) for power in range(33))
MAX_LOGGED_CHARS = 200  # of a path or a model name a client sent


class ExactCounter(Collector):
    """A counter printed under exactly ``name``, as TensorFlow Serving prints its own."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "unknown")
        with self._lock:
            values = sorted(self._values.items())
        for labels, value in values:
            metric.add_sample(self.name, dict(zip(self.labelnames, labels, strict=True)), value)
        yield metric


class VersionStates(Collector):
    """``dann_serve_model_version_state``: 1 for each version's current state."""

    name = "dann_serve_model_version_state"

    def __init__(self) -> None:
        self._states: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def set(self, model: str, version: int, state: str) -> None:
        with self._lock:
            self._states[(model, version)] = state

    def collect(self) -> Iterator[Metric]:
        metric = Metric(
            self.name,
            "The state of each model version the server knows of (GetModelStatus's): 1.",
            "gauge",
        )
        with self._lock:
            states = sorted(self._states.items())
        for (model, version), state in states:
            labels = {"model_name": model, "version": str(version), "state": state}
            metric.add_sample(self.name, labels, 1.0)
        yield metric


# TensorFlow Serving's exporter prints no *_created series; neither do these.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_COUNT = ExactCounter(
    ":tensorflow:serving:request_count",
    "Predict requests by model and canonical status.",
    ("model_name", "status"),
)
REQUEST_LATENCY = Histogram(
    ":tensorflow:serving:request_latency",
    "Wall time of answered Predict requests, in microseconds.",
    ("model_name", "API", "entrypoint"),
    registry=REGISTRY,
    buckets=LATENCY_BUCKETS_US,
)
LOAD_ATTEMPT_COUNT = ExactCounter(
    ":tensorflow:cc:saved_model:load_attempt_count",
    "SavedModel loads tried, by version directory and outcome (success or fail).",
    ("model_path", "status"),
)
LOAD_LATENCY = ExactCounter(
    ":tensorflow:cc:saved_model:load_latency",
    "Microseconds spent in SavedModel loads that succeeded, by version directory.",
    ("model_path",),
)
WARMUP_LATENCY = Histogram(
    ":tensorflow:serving:model_warmup_latency",
    "Wall time of replaying a version's warm-up records, in microseconds.",
    ("model_path", "status"),
    registry=REGISTRY,
    buckets=LATENCY_BUCKETS_US,
)
REQUESTS = Counter(
    "dann_serve_requests",
    "Model API calls (Predict, GetModelMetadata, GetModelStatus) by model, signature,"
    " protocol and canonical status.",
    ("model_name", "signature_name", "API", "entrypoint", "status"),
    registry=REGISTRY,
)
CAPTURE_IMAGES = Counter(
    "dann_serve_capture_images",
    "Served images kept as files under --capture-dir, by model and version.",
    ("model_name", "version"),
    registry=REGISTRY,
)
CAPTURE_ERRORS = Counter(
    "dann_serve_capture_errors",
    "Sampled images --capture-dir could not keep, by reason (disk_full, unwritable,"
    " io_error); the requests were answered all the same.",
    ("reason",),
    registry=REGISTRY,
)
CAPTURE_DROPPED = Counter(
    "dann_serve_capture_dropped",
    "Sampled images dropped unwritten because the capture's queue was full.",
    registry=REGISTRY,
)
VERSION_STATES = VersionStates()
for _collector in (REQUEST_COUNT, LOAD_ATTEMPT_COUNT, LOAD_LATENCY, VERSION_STATES):
    REGISTRY.register(_collector)
ProcessCollector(registry=REGISTRY)  # process_resident_memory_bytes, CPU seconds, open fds


def page() -> tuple[bytes, str]:
    """The metrics page and its content type, for ``GET /monitoring/prometheus/metrics``."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# -- one request ------------------------------------------------------------------------


@dataclass
class Call:
    """One request as the access log and the metrics see it."""

    entrypoint: str  # GRPC or REST
    peer: str
    request: str  # the RPC's full method, or "METHOD /path"
    bytes_in: int = 0
    started: float = field(default_factory=time.perf_counter)
    # Noted by the core as it learns them:
    api: str = ""  # empty: no model API was reached (a malformed URL, the metrics page)
    model: str = ""
    served: bool = False  # whether ``model`` is one the server serves
    version: int | None = None
    signature: str = ""
    status: str = ""  # canonical code name: OK, NOT_FOUND, ...
    # Set by the front end at the end:
    http_status: int | None = None
    bytes_out: int = 0


_CURRENT: ContextVar[Call | None] = ContextVar("dann_serve_call", default=None)


@contextmanager
def current(call: Call) -> Iterator[Call]:
    """Make ``call`` the one the core's notes go to, in this thread, for the block."""
    token = _CURRENT.set(call)
    try:
        yield call
    finally:
        _CURRENT.reset(token)


def note_signature(key: str) -> None:
    """The signature the current request runs (a no-op outside a request: warm-up)."""
    call = _CURRENT.get()
    if call is not None:
        call.signature = key


def note_version(version: int) -> None:
    """The version the current request was answered from."""
    call = _CURRENT.get()
    if call is not None:
        call.version = version


@contextmanager
def api_call(api: str, model: str, served: bool) -> Iterator[None]:
    """The block runs model API ``api`` on ``model``: note both, and the canonical status
    the block ends with (a ServingError's code, INTERNAL for anything else)."""
    call = _CURRENT.get()
    if call is None:
        yield
        return
    call.api, call.model, call.served = api, model, served
    try:
        yield
    except ServingError as error:
        call.status = error.code.name
        raise
    except Exception:
        call.status = grpc.StatusCode.INTERNAL.name
        raise
    call.status = grpc.StatusCode.OK.name


def finish(call: Call) -> None:
    """Count a finished request and write its access-log line."""
    elapsed = time.perf_counter() - call.started
    if call.api:
        model = call.model if call.served else ""
        status = call.status or grpc.StatusCode.UNKNOWN.name
        REQUESTS.labels(model, call.signature, call.api, call.entrypoint, status).inc()
        if call.api == PREDICT:  # TensorFlow Serving counts its inference APIs only
            REQUEST_COUNT.inc(model, status)
            if status == grpc.StatusCode.OK.name:  # and times the answered ones
                REQUEST_LATENCY.labels(model, PREDICT, call.entrypoint).observe(elapsed * 1e6)
    access = logging.getLogger(ACCESS_LOGGER)
    if access.isEnabledFor(logging.INFO):
        access.info(_access_line(call, elapsed))


def _quoted(text: str) -> str:
    """A client's text on one log line: quoted, escaped, bounded."""
    return json.dumps(text[:MAX_LOGGED_CHARS])


def _access_line(call: Call, elapsed: float) -> str:
    status = call.http_status if call.http_status is not None else (call.status or "UNKNOWN")
    version = "-" if call.version is None else str(call.version)
    return (
        f"proto={call.entrypoint} peer={call.peer or '-'} request={_quoted(call.request)}"
        f" model={_quoted(call.model)} version={version} signature={_quoted(call.signature)}"
        f" status={status} bytes_in={call.bytes_in} bytes_out={call.bytes_out}"
        f" ms={elapsed * 1e3:.3f}"
    )


# -- loading ----------------------------------------------------------------------------


@contextmanager
def saved_model_load(path: Path) -> Iterator[None]:
    """Time and count one SavedModel load, under TensorFlow's names."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        LOAD_ATTEMPT_COUNT.inc(str(path), "fail")
        raise
    LOAD_ATTEMPT_COUNT.inc(str(path), "success")
    LOAD_LATENCY.inc(str(path), amount=(time.perf_counter() - started) * 1e6)


@contextmanager
def warmup(path: Path) -> Iterator[None]:
    """Time one replay of a version's warm-up records, by outcome."""
    started = time.perf_counter()
    status = grpc.StatusCode.OK.name
    try:
        yield
    except ServingError as error:
        status = error.code.name
        raise
    except BaseException:
        status = grpc.StatusCode.INTERNAL.name
        raise
    finally:
        elapsed_us = (time.perf_counter() - started) * 1e6
        WARMUP_LATENCY.labels(str(path), status).observe(elapsed_us)


def record_state(model: str, version: int, state: int) -> None:
    """A version entered ``state`` (a ModelVersionStatus.State)."""
    VERSION_STATES.set(model, version, get_model_status_pb2.ModelVersionStatus.State.Name(state))

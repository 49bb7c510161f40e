"""Concurrent Predict load against a server, for the reliability tests and bench/load.py.

Each client is a thread with its own gRPC channel sending one request at a time, as
independent callers would. Every answer's latency and model version is recorded and
every failure kept with its status, so a run shows errors, p50/p99 and, when a new
version lands while it runs, the moment each client switched.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from dann_client.contract import DEFAULT_MODEL, INPUT_NAME, PREDICT_LABEL, SERVER_MAX_MESSAGE_BYTES
from dann_client.tensors import fill_tensor_proto


@dataclass
class LoadResult:
    """What the clients saw: per client, the version of each answer, in order."""

    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    errors: list[str] = field(default_factory=list)  # "CODE: details" of failed ones
    versions: list[list[int]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)

    def percentile_ms(self, q: float) -> float:
        if len(self.latencies) < 2:
            return 1000 * (self.latencies[0] if self.latencies else float("nan"))
        return (
            1000
            * statistics.quantiles(self.latencies, n=1000, method="inclusive")[round(q * 10) - 1]
        )

    def summary(self) -> str:
        switched = sum(1 for seen in self.versions if len(set(seen)) > 1)
        return (
            f"{len(self.versions)} clients, {self.requests} requests in {self.seconds:.1f} s "
            f"({self.requests / self.seconds:.0f}/s), errors {len(self.errors)}, "
            f"p50 {self.percentile_ms(50):.2f} ms, p99 {self.percentile_ms(99):.2f} ms, "
            f"versions {sorted({v for seen in self.versions for v in seen})}, "
            f"{switched} clients switched version"
        )


def predict_request(images: np.ndarray, model: str = DEFAULT_MODEL) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = PREDICT_LABEL
    fill_tensor_proto(request.inputs[INPUT_NAME], images.astype(np.float32))
    return request


class _Clients:
    """The state the client threads of one :func:`run_load` share."""

    def __init__(
        self,
        address: str,
        credentials: grpc.ChannelCredentials | None,
        clients: int,
        requests: int,
        until_version: int | None,
        timeout: float,
        deadline: float,
    ) -> None:
        self.address, self.credentials = address, credentials
        self.requests, self.until_version, self.timeout = requests, until_version, timeout
        self.result = LoadResult(versions=[[] for _ in range(clients)])
        self.lock = threading.Lock()
        self.started = threading.Barrier(clients + 1)
        self.answered_once = threading.Semaphore(0)
        self.hook_done = threading.Event()
        self.end_by = time.monotonic() + deadline

    def _channel(self) -> grpc.Channel:
        options = [
            ("grpc.max_send_message_length", SERVER_MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", SERVER_MAX_MESSAGE_BYTES),
        ]
        if self.credentials:
            return grpc.secure_channel(self.address, self.credentials, options)
        return grpc.insecure_channel(self.address, options)

    def _goes_on(self, sent: int, seen: list[int]) -> bool:
        if time.monotonic() >= self.end_by:
            return False
        waiting = self.until_version is not None and (not seen or seen[-1] < self.until_version)
        return sent < self.requests or not self.hook_done.is_set() or waiting

    def client(self, index: int, images: np.ndarray) -> None:
        with self._channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            batches = [predict_request(batch) for batch in images]
            seen = self.result.versions[index]
            self.started.wait()
            sent = 0
            while self._goes_on(sent, seen):
                request = batches[(index + sent) % len(batches)]
                begin = time.perf_counter()
                try:
                    response = stub.Predict(request, timeout=self.timeout)
                except grpc.RpcError as error:
                    with self.lock:
                        self.result.errors.append(f"{error.code().name}: {error.details()}")
                else:
                    elapsed = time.perf_counter() - begin
                    with self.lock:
                        self.result.latencies.append(elapsed)
                    seen.append(response.model_spec.version.value)
                    if len(seen) == 1:
                        self.answered_once.release()
                sent += 1


def run_load(
    address: str,
    clients: int,
    requests: int,
    images: np.ndarray,
    *,
    while_running: Callable[[], object] | None = None,
    until_version: int | None = None,
    timeout: float = 30.0,
    deadline: float = 600.0,
    credentials: grpc.ChannelCredentials | None = None,
) -> LoadResult:
    """``clients`` threads send ``requests`` Predicts each (batches cycle through
    ``images``, an array of shape [B, N, 32, 32, 3]).

    ``while_running`` is called in this thread once every client has been answered at
    least once, i.e. under load; the clients go on until it returns. With
    ``until_version``, each client also goes on until it has been answered by that
    version or a newer one. Nothing stops early on an error: they are all counted.
    """
    shared = _Clients(address, credentials, clients, requests, until_version, timeout, deadline)
    if while_running is None:
        shared.hook_done.set()
    threads = [
        threading.Thread(target=shared.client, args=(i, images), name=f"load-{i}", daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    shared.started.wait()
    begin = time.monotonic()
    try:
        if while_running is not None:
            for _ in range(clients):
                shared.answered_once.acquire(timeout=max(0.0, shared.end_by - time.monotonic()))
            while_running()
    finally:
        shared.hook_done.set()
        for thread in threads:
            thread.join()
    shared.result.seconds = time.monotonic() - begin
    return shared.result

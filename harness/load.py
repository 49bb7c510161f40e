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
    result = LoadResult(versions=[[] for _ in range(clients)])
    lock = threading.Lock()
    started = threading.Barrier(clients + 1)
    answered_once = threading.Semaphore(0)
    hook_done = threading.Event()
    if while_running is None:
        hook_done.set()
    end_by = time.monotonic() + deadline

    def client(index: int) -> None:
        options = [
            ("grpc.max_send_message_length", SERVER_MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", SERVER_MAX_MESSAGE_BYTES),
        ]
        channel = (
            grpc.secure_channel(address, credentials, options)
            if credentials
            else grpc.insecure_channel(address, options)
        )
        with channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            batches = [predict_request(batch) for batch in images]
            seen = result.versions[index]
            started.wait()
            sent = 0
            while time.monotonic() < end_by and (
                sent < requests
                or not hook_done.is_set()
                or (until_version is not None and (not seen or seen[-1] < until_version))
            ):
                request = batches[(index + sent) % len(batches)]
                begin = time.perf_counter()
                try:
                    response = stub.Predict(request, timeout=timeout)
                except grpc.RpcError as error:
                    with lock:
                        result.errors.append(f"{error.code().name}: {error.details()}")
                else:
                    elapsed = time.perf_counter() - begin
                    with lock:
                        result.latencies.append(elapsed)
                    seen.append(response.model_spec.version.value)
                    if len(seen) == 1:
                        answered_once.release()
                sent += 1

    threads = [
        threading.Thread(target=client, args=(i,), name=f"load-{i}", daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    started.wait()
    begin = time.monotonic()
    try:
        if while_running is not None:
            for _ in range(clients):
                answered_once.acquire(timeout=max(0.0, end_by - time.monotonic()))
            while_running()
    finally:
        hook_done.set()
        for thread in threads:
            thread.join()
    result.seconds = time.monotonic() - begin
    return result

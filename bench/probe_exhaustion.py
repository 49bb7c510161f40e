"""Cases of ``bench/probe.py`` in which a peer tries to use up what the server has a fixed
amount of: connections (5, a burst), memory (6, a small message declaring a huge shape),
gRPC workers (13, calls that never send their message), REST admission slots (17, bodies
sent a byte a second), the log (19, messages that are no protocol buffer) and the
request head's buffer (22, thousands of headers). Each passes when a good request is
still answered at once meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable

from bench.probe_wire import (
    MODEL,
    Target,
    describe,
    json_body,
    not_run,
    post,
    predict,
    raw_http,
    report,
)

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
HELD = 64  # stalled calls or slow bodies held open at once


def burst(target: Target, connections: int) -> tuple[int, list[float], list[str]]:
    """``connections`` clients connecting at the same moment, one status GET each."""
    gate = threading.Barrier(connections)
    latencies: list[float] = []
    failures: list[str] = []
    request = f"GET /v1/models/{MODEL} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n".encode()

    def one() -> None:
        gate.wait()
        start = time.monotonic()
        try:
            answers, ended = raw_http(target, request, half_close=False, wait=20)
        except OSError as error:
            failures.append(str(error))
            return
        if answers and answers[0][0] == 200:
            latencies.append(time.monotonic() - start)
        else:
            failures.append(describe(answers, ended))

    threads = [threading.Thread(target=one) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), latencies, failures


def case_burst(target: Target, connections: int = 100) -> None:
    answered, latencies, failures = burst(target, connections)
    latencies.sort()
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else 0
    load = os.getloadavg()[0]
    report(
        "5",
        f"{connections} REST connections at the same moment, one status GET each",
        f"{answered} answered 200, p50 {1000 * p50:.0f} ms, p99 {1000 * p99:.0f} ms "
        f"(load average {load:.1f}){'; ' + failures[0] if failures else ''}",
        "all answered, p99 under 2 s",
        answered == connections and p99 < 2.0,
        target,
    )


def _timed(call: Callable[[], str], times: int = 3) -> tuple[float, str]:
    """The slowest of ``times`` good requests, in seconds, and how they went: "answered",
    or the first failure (``call`` returns "" when answered, else what went wrong)."""
    slowest, failures = 0.0, []
    for _ in range(times):
        start = time.monotonic()
        failures.append(call())
        slowest = max(slowest, time.monotonic() - start)
    failed = [failure for failure in failures if failure]
    return slowest, f"{len(failed)} FAILED: {failed[0]}" if failed else "answered"


def _good_grpc_within(target: Target, timeout: float) -> str:
    import grpc
    import numpy as np

    try:
        predict(target, np.full((1, 32, 32, 3), 0.5, np.float32), timeout=timeout)
    except grpc.RpcError as error:
        return f"{error.code().name} {error.details()[:60]}"
    return ""


def _good_rest_within(target: Target, timeout: float) -> str:
    import numpy as np

    image = json_body({"instances": np.full((1, 32, 32, 3), 0.5).tolist()})
    answers, ended = raw_http(target, post(f"/v1/models/{MODEL}:predict", image), wait=timeout)
    return "" if [status for status, _ in answers] == [200] else describe(answers, ended)[:80]


def case_stalled_grpc(target: Target) -> None:
    """Calls that send their headers and never their message must not hold workers."""
    import grpc

    release = threading.Event()

    def never():  # a request stream that yields nothing until the end of the case
        release.wait()
        return
        yield

    channel = grpc.insecure_channel(target.grpc)
    stalled = [channel.stream_unary(PREDICT_METHOD).future(never()) for _ in range(HELD)]
    try:
        time.sleep(1)  # the calls reach the server
        slowest, answers = _timed(lambda: _good_grpc_within(target, 5))
        ended = Counter(call.exception().code().name for call in stalled if call.done())
    finally:
        for call in stalled:
            call.cancel()
        release.set()
        channel.close()
    report(
        "13",
        f"{HELD} gRPC Predict calls sending headers but never their message, held open",
        f"{HELD - ended.total()} still open{''.join(f', {n} {c}' for c, n in ended.items())}; "
        f"3 good gRPC Predicts {answers}, slowest in {slowest:.2f} s",
        "a good Predict answered within 1 s meanwhile",
        answers == "answered" and slowest < 1.0,
        target,
    )


def _drip(sockets: list[socket.socket], stop: threading.Event) -> None:
    """One body byte a second on every socket until ``stop``."""
    while not stop.wait(1.0):
        for sock in sockets:
            with contextlib.suppress(OSError):  # a connection the server ended
                sock.sendall(b" ")


def case_slow_bodies(target: Target) -> None:
    """Bodies still arriving must not hold the slots that admit requests to the model."""
    head = (
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: probe\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    sockets: list[socket.socket] = []
    stop = threading.Event()
    dripper = threading.Thread(target=_drip, args=(sockets, stop))
    try:
        for _ in range(HELD):
            sock = socket.create_connection((target.rest_host, target.rest_port), timeout=5)
            sock.sendall(head + b'{"instances": [')
            sockets.append(sock)
        dripper.start()
        time.sleep(2)
        slowest, answers = _timed(lambda: _good_rest_within(target, 10))
    finally:
        stop.set()
        if dripper.is_alive():
            dripper.join()
        for sock in sockets:
            sock.close()
    report(
        "17",
        f"{HELD} REST predicts declaring Content-Length 100000, body sent 1 byte a second",
        f"3 good REST predicts {answers}, slowest in {slowest:.2f} s",
        "a good REST predict answered within 1 s meanwhile",
        answers == "answered" and slowest < 1.0,
        target,
    )


def case_log_flood(target: Target, messages: int = 200) -> None:
    """Garbage at a peer's rate must not write a traceback per message."""
    import grpc

    if target.server is None:
        not_run("19", f"{messages} non-protobuf gRPC messages", "the server's log is unseen")
        return
    before = len(target.server.log().splitlines())
    codes = set()
    with grpc.insecure_channel(target.grpc) as channel:
        raw = channel.unary_unary(PREDICT_METHOD)  # no serializers: the bytes go as they are
        for _ in range(messages):
            try:
                raw(b"\xff\xff\xff\xff\x0fnotpb", timeout=10)
                codes.add("OK")
            except grpc.RpcError as error:
                codes.add(error.code().name)
    time.sleep(1)
    written = target.server.log().splitlines()[before:]
    tracebacks = sum("Traceback" in line for line in written)
    report(
        "19",
        f"{messages} ten-byte gRPC Predict messages that are no protocol buffer",
        f"{'/'.join(sorted(codes))}; {len(written)} log lines, {tracebacks} tracebacks",
        f"no traceback, at most one log line per message ({messages})",
        tracebacks == 0 and len(written) <= messages and "OK" not in codes,
        target,
    )


def case_huge_head(target: Target, headers: int = 4000) -> None:
    """A request head over 64 KiB is refused with 431, as docs/RELIABILITY.md says."""
    lines = "".join(f"X-Probe-{number:04d}: {'v' * 5}\r\n" for number in range(headers))
    payload = f"GET /v1/models/{MODEL} HTTP/1.1\r\nHost: probe\r\n{lines}\r\n".encode()
    try:
        answers, ended = raw_http(target, payload)
        got = describe(answers, ended)
    except OSError as error:  # a server may stop reading and reset before its answer
        answers, got = [], f"{type(error).__name__}: {error}"
    status = answers[0][0] if answers else None
    report(
        "22",
        f"a {len(payload) / 1000:.0f} kB request head of {headers} headers",
        got,
        "431",
        status == 431,
        target,
    )


def case_amplification(target: Target) -> None:
    import grpc
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    tensor = request.inputs["images"]
    tensor.dtype = 1
    for size in (21000, 32, 32, 3):
        tensor.tensor_shape.dim.add(size=size)
    tensor.float_val.append(0.5)
    before = target.rss_mb()
    start = time.monotonic()
    try:
        predict(target, request=request, timeout=60)
        got = "OK (run)"
        code = None
    except grpc.RpcError as error:
        code = error.code()
        got = f"{code.name}: {error.details()[:90]}"
    took = time.monotonic() - start
    after = target.rss_mb()
    grown = f", RSS +{after - before:.0f} MB" if before is not None else ""
    report(
        "6",
        f"a {request.ByteSize()}-byte Predict declaring [21000,32,32,3] with one float_val",
        f"{got} in {took:.2f} s{grown}",
        "INVALID_ARGUMENT at once, nothing allocated",
        code == grpc.StatusCode.INVALID_ARGUMENT
        and took < 1
        and (before is None or after - before < 50),
        target,
    )


CASES = {
    "5": case_burst,
    "6": case_amplification,
    "13": case_stalled_grpc,
    "17": case_slow_bodies,
    "19": case_log_flood,
    "22": case_huge_head,
}

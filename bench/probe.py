"""Replay the hostile requests of issue 17 against a ``dann-serve serve`` (or TF Serving).

One line per case: what was sent, what came back, what TensorFlow Serving answers, and
whether a good request (REST and gRPC) was answered right after. The cases are the
numbered server-side ones of the issue: 1 request smuggling, 2 numbers and lengths
too big, 3 a body shorter than its Content-Length, 4 a client that hangs up, 5 a
burst of connections, 6 gRPC shape amplification, 7 memory after large requests,
8 memory over version add/delete cycles, 11 non-numbers in an image, and the REST
idle timeout (one byte every few seconds); plus the resource bounds of
docs/RELIABILITY.md (batch, body, in-flight requests). Cases 9 and 10 are the
client's (``dann-client``) and are covered by its own tests in client/tests.

    python bench/probe.py --model-dir models            # starts a server itself
    python bench/probe.py --grpc 127.0.0.1:8500 --rest http://127.0.0.1:8501

With ``--model-dir`` the script starts ``dann-serve serve`` on a private copy of the
tree, can read its memory (cases 7 and 8 need that) and checks its log for tracebacks
at the end. Exit status 0 when every case answered as expected.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

import _common  # noqa: F401  (puts the checkout on sys.path for harness/)
from harness.raw_http import read_responses
from harness.server_process import LocalServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
MODEL = "dann"


@dataclass
class Target:
    grpc: str
    rest_host: str
    rest_port: int
    server: LocalServer | None = None
    deadline: float = 30.0

    def rss_mb(self) -> float | None:
        if self.server is None:
            return None
        for line in Path(f"/proc/{self.server.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None


# -- raw HTTP ---------------------------------------------------------------------------


def raw_http(target: Target, payload: bytes, half_close: bool = True, wait: float = 10.0):
    with socket.create_connection((target.rest_host, target.rest_port), timeout=wait) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answers, ended, _ = read_responses(sock, wait)
        return answers, ended


def post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: probe\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def image_json(first: str) -> str:
    """A 32x32x3 image as JSON text, all 0.5 but its first value, given as JSON text."""
    row = ",".join(["[0.5,0.5,0.5]"] * 31)
    return f"[[[{first},0.5,0.5],{row}]" + f",[{row},[0.5,0.5,0.5]]" * 31 + "]"


def describe(answers: list[tuple[int, bytes]], ended: str = "") -> str:
    if not answers:
        return f"no answer ({ended})"
    parts = [f"{status} {body[:70].decode(errors='replace')}" for status, body in answers]
    count = f"{len(answers)} responses: " if len(answers) > 1 else ""
    return count + " | ".join(parts)


# -- good requests ----------------------------------------------------------------------


def good_rest(target: Target) -> bool:
    image = np.full((1, 32, 32, 3), 0.5, np.float32).tolist()
    answers, _ = raw_http(target, post(f"/v1/models/{MODEL}:predict", _json({"instances": image})))
    return len(answers) == 1 and answers[0][0] == 200


def good_grpc(target: Target) -> bool:
    import grpc

    try:
        response = predict(target, np.full((1, 32, 32, 3), 0.5, np.float32))
    except grpc.RpcError:
        return False
    return len(response.outputs["label"].tensor_content) == 8


def predict(target: Target, images=None, request=None, timeout: float = 30.0):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from dann_client.tensors import fill_tensor_proto

    if request is None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        fill_tensor_proto(request.inputs["images"], images)
    limit = [("grpc.max_send_message_length", 1 << 30)]
    with grpc.insecure_channel(target.grpc, options=limit) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(request, timeout=timeout)


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# -- the cases --------------------------------------------------------------------------

RESULTS: list[bool] = []


def report(case: str, sent: str, got: str, expected: str, ok: bool, target: Target) -> None:
    """One line: the case, what was sent, what came back, what was expected, and
    whether a good request (REST and gRPC) was answered right after."""
    after = good_rest(target) and good_grpc(target)
    passed = ok and after
    RESULTS.append(passed)
    then = "answered" if after else "NOT ANSWERED"
    print(
        f"{'ok  ' if passed else 'FAIL'} {case:4} sent: {sent} | got: {got} | "
        f"expected: {expected} | then a good request: {then}",
        flush=True,
    )


def case_smuggling(target: Target) -> None:
    smuggled = b"GET /v1/models/SMUGGLED HTTP/1.1\r\nHost: probe\r\n\r\n"
    routes = [
        ("POST", f"/v1/models/{MODEL}:classify"),
        ("POST", f"/v1/models/{MODEL}:regress"),
        ("POST", f"/v1/models/{MODEL}/metadata"),
        ("POST", "/v1/unknown/path"),
        ("GET", f"/v1/models/{MODEL}"),
    ]
    for number, (method, path) in enumerate(routes):
        head = f"{method} {path} HTTP/1.1\r\nHost: probe\r\nContent-Length: {len(smuggled)}\r\n\r\n"
        answers, ended = raw_http(target, head.encode() + smuggled)
        report(
            f"1{'abcde'[number]}",
            f"{method} {path} whose body is a GET of /v1/models/SMUGGLED",
            describe(answers, ended),
            "exactly 1 response, never one for SMUGGLED",
            len(answers) == 1 and b"SMUGGLED" not in answers[0][1],
            target,
        )


def case_big_numbers(target: Target) -> None:
    body = f'{{"inputs": [{image_json("1" + "0" * 399)}]}}'.encode()
    cases = [
        ("2a", "a 400-digit integer in 'inputs'", post(f"/v1/models/{MODEL}:predict", body)),
        (
            "2b",
            "GET /versions/9223372036854775808 (2^63)",
            f"GET /v1/models/{MODEL}/versions/{2**63} HTTP/1.1\r\nHost: p\r\n\r\n".encode(),
        ),
        (
            "2c",
            "GET /versions/ followed by 5,000 digits",
            f"GET /v1/models/{MODEL}/versions/{'9' * 5000} HTTP/1.1\r\nHost: p\r\n\r\n".encode(),
        ),
        (
            "2d",
            "a 5,000-digit Content-Length",
            f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: p\r\n"
            f"Content-Length: {'9' * 5000}\r\n\r\n{{}}".encode(),
        ),
        (
            "2e",
            "Content-Length: \u00b2 (a digit to str.isdigit, not to int)",
            f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: p\r\n"
            "Content-Length: \u00b2\r\n\r\n{}".encode("latin-1"),
        ),
    ]
    for case, sent, payload in cases:
        answers, ended = raw_http(target, payload)
        status = answers[0][0] if answers else None
        report(case, sent, describe(answers, ended), "400", status == 400, target)


def case_short_body(target: Target) -> None:
    payload = (
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: p\r\nContent-Length: 5000\r\n\r\n"
    ).encode() + b'{"instances": [[[[0.5'
    start = time.monotonic()
    answers, ended = raw_http(target, payload, half_close=False, wait=target.deadline + 10)
    took = time.monotonic() - start
    status = answers[0][0] if answers else None
    report(
        "3a",
        "21 of 5000 body bytes, then silence (connection kept open)",
        f"{describe(answers, ended)} after {took:.1f} s",
        f"504 at the REST deadline ({target.deadline:g} s), no thread held",
        status == 504 and took < target.deadline + 5,
        target,
    )
    start = time.monotonic()
    answers, ended = raw_http(target, payload, half_close=True)
    took = time.monotonic() - start
    status = answers[0][0] if answers else None
    report(
        "3b",
        "21 of 5000 body bytes, then end of stream",
        f"{describe(answers, ended)} after {took:.1f} s",
        "400 at once",
        status == 400 and took < 2,
        target,
    )


def case_hang_up(target: Target) -> None:
    images = np.random.default_rng(4).random((512, 32, 32, 3), dtype=np.float32)
    body = _json({"instances": images.tolist()})
    for _ in range(3):
        with socket.create_connection((target.rest_host, target.rest_port), timeout=30) as sock:
            sock.sendall(post(f"/v1/models/{MODEL}:predict", body))
            # close at once with a reset: the answer has nowhere to go
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    time.sleep(3)
    log = target.server.log() if target.server else ""
    bad = log.count("Traceback") + log.count("internal error")
    report(
        "4",
        "3 predicts of 512 images, each connection reset before the answer",
        f"{bad} traceback/internal-error lines in the log" if target.server else "(log unseen)",
        "nothing logged as an error",
        bad == 0,
        target,
    )


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


def case_non_numbers(target: Target) -> None:
    for number, value in enumerate(["null", "true", '"0.5"']):
        body = f'{{"instances": [{image_json(value)}]}}'.encode()
        answers, ended = raw_http(target, post(f"/v1/models/{MODEL}:predict", body))
        status = answers[0][0] if answers else None
        report(
            f"11{'abc'[number]}",
            f"{value} as one pixel of a correctly shaped image",
            describe(answers, ended),
            "400 (TF Serving: JSON Value ... is not of expected type: float)",
            status == 400,
            target,
        )


def case_drip(target: Target) -> None:
    """One header byte every 2 s: the connection must end by the request deadline."""
    payload = f"GET /v1/models/{MODEL} HTTP/1.1\r\nHost: probe\r\n".encode()
    start = time.monotonic()
    closed_after = None
    with socket.create_connection((target.rest_host, target.rest_port), timeout=5) as sock:
        for index in range(len(payload)):
            try:
                sock.sendall(payload[index : index + 1])
                sock.settimeout(2)
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - start
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - start
                break
            if time.monotonic() - start > target.deadline + 10:
                break
    got = f"closed after {closed_after:.1f} s" if closed_after else "still open"
    report(
        "12",
        "a request's head one byte every 2 s (REST idle timeout)",
        got,
        f"closed by the REST deadline ({target.deadline:g} s)",
        closed_after is not None and closed_after < target.deadline + 3,
        target,
    )


def case_bounds(target: Target) -> None:
    import grpc

    batch = np.zeros((1025, 32, 32, 3), np.float32)
    answers, ended = raw_http(
        target, post(f"/v1/models/{MODEL}:predict", _json({"instances": batch.tolist()}))
    )
    status = answers[0][0] if answers else None
    report(
        "b1", "REST predict of 1025 images", describe(answers, ended), "400", status == 400, target
    )
    try:
        predict(target, batch)
        got, code = "OK", None
    except grpc.RpcError as error:
        code = error.code()
        got = f"{code.name}: {error.details()[:90]}"
    report(
        "b2",
        "gRPC predict of 1025 images",
        got,
        "INVALID_ARGUMENT",
        code == grpc.StatusCode.INVALID_ARGUMENT,
        target,
    )
    head = f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: p\r\n"
    head += f"Content-Length: {1 << 40}\r\n\r\n{{"
    start = time.monotonic()
    answers, ended = raw_http(target, head.encode())
    status = answers[0][0] if answers else None
    report(
        "b3",
        "REST Content-Length of 1 TiB",
        f"{describe(answers, ended)} in {time.monotonic() - start:.2f} s",
        "429 at once, body unread",
        status == 429,
        target,
    )


def _settle(target: Target) -> float:
    time.sleep(2)
    return target.rss_mb()


def _large_requests(target: Target, count: int, images: int, clients: int = 4) -> list[int]:
    """``count`` REST predicts of ``images`` images from ``clients`` threads: the statuses."""
    batch = np.random.default_rng(images).random((images, 32, 32, 3), dtype=np.float32)
    body = post(f"/v1/models/{MODEL}:predict", _json({"instances": batch.tolist()}))
    statuses: list[int] = []

    def client(share: int) -> None:
        for _ in range(share):
            answers, _ = raw_http(target, body, wait=120)
            statuses.append(answers[0][0] if answers else 0)

    threads = [threading.Thread(target=client, args=(count // clients,)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def _wait_status(target: Target, version: int, state: str, timeout: float = 60) -> bool:
    request = f"GET /v1/models/{MODEL}/versions/{version} HTTP/1.1\r\nHost: p\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answers, _ = raw_http(target, request)
        if answers and f'"state":"{state}"'.encode() in answers[0][1].replace(b" ", b""):
            return True
        time.sleep(0.2)
    return False


def case_memory(target: Target, skip: set[str]) -> None:
    """Cases 7 and 8: RSS after warm-up, after large requests, after version cycles."""
    warm = _settle(target)
    print(f"          memory: RSS after warm-up {warm:.0f} MB", flush=True)
    if "7" not in skip:
        for images in (2000, 1024):
            statuses = _large_requests(target, 24, images)
            rss = _settle(target)
            report(
                f"7{'ab'[images == 1024]}",
                f"24 REST predicts of {images} images (4 clients)",
                f"statuses {sorted(set(statuses))}, RSS {rss:.0f} MB "
                f"({100 * (rss / warm - 1):+.1f}% of warm-up)",
                "RSS within 10% of its level after warm-up",
                rss <= 1.1 * warm and 0 not in statuses and 500 not in statuses,
                target,
            )
    if "8" not in skip:
        root = target.server.model_dir / MODEL
        version = max(int(p.name) for p in root.iterdir() if p.name.isdigit()) + 1
        start_rss, ok = _settle(target), True
        for _ in range(20):
            staging = root / f".staging-{version}-probe"
            shutil.copytree(root / str(version - 1), staging)
            staging.rename(root / str(version))
            ok &= _wait_status(target, version, "AVAILABLE")
            shutil.rmtree(root / str(version))
            ok &= _wait_status(target, version, "END")
        rss = _settle(target)
        report(
            "8",
            f"20 cycles: version {version} added, served, deleted, unloaded",
            f"RSS {start_rss:.0f} -> {rss:.0f} MB ({100 * (rss / warm - 1):+.1f}% of warm-up)",
            "RSS within 10% of its level after warm-up",
            ok and rss <= 1.1 * warm,
            target,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grpc", help="HOST:PORT of a running server")
    parser.add_argument("--rest", help="URL of its REST API (http://HOST:PORT)")
    parser.add_argument("--model-dir", type=Path, help="start dann-serve serve on a copy of it")
    parser.add_argument("--deadline", type=float, default=30.0, help="the server's REST deadline")
    parser.add_argument("--skip", default="", help="comma-separated cases to leave out")
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        help="passed on to dann-serve serve (repeatable)",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="probe-"))
    server = None
    if args.model_dir:
        shutil.copytree(args.model_dir, work / "models")
        server = LocalServer(work / "models", work / "serve.log", *args.serve_option)
        server.wait_ready()
        grpc_address, rest_url = server.grpc_address, server.rest_url
    elif args.grpc and args.rest:
        grpc_address, rest_url = args.grpc, args.rest
    else:
        parser.error("give --model-dir, or --grpc and --rest")
    url = urlsplit(rest_url)
    target = Target(grpc_address, url.hostname, url.port, server, args.deadline)
    skip = set(filter(None, args.skip.split(",")))
    print(
        f"probing gRPC {grpc_address}, REST {rest_url} (load average "
        f"{os.getloadavg()[0]:.1f}); cases 9 and 10 are the client's: see client/tests"
    )
    cases = {
        "1": case_smuggling,
        "2": case_big_numbers,
        "3": case_short_body,
        "4": case_hang_up,
        "5": case_burst,
        "6": case_amplification,
        "11": case_non_numbers,
        "12": case_drip,
        "b": case_bounds,
    }
    try:
        for name, run in cases.items():
            if name not in skip:
                run(target)
        if server is not None and not {"7", "8"} <= skip:
            case_memory(target, skip)
    finally:
        if server is not None:
            server.stop()
            log = server.log()
            tracebacks = log.count("Traceback")
            print(
                f"server log: {len(log.splitlines())} lines, {tracebacks} tracebacks "
                f"({work / 'serve.log'})"
            )
            RESULTS.append(tracebacks == 0)
    print(f"{sum(RESULTS)} of {len(RESULTS)} as expected")
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())

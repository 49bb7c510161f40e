"""How ``bench/probe.py`` talks to a server: raw HTTP on a socket (so that a request can
be malformed on purpose), a gRPC Predict, the good requests that must still be answered
after each hostile one, and the one-line report every case prints.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.raw_http import read_responses
from harness.server_process import LocalServer

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
    answers, _ = raw_http(
        target, post(f"/v1/models/{MODEL}:predict", json_body({"instances": image}))
    )
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


def json_body(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# -- reporting --------------------------------------------------------------------------

RESULTS: list[bool] = []
NOT_RUN: list[str] = []  # cases this machine cannot replay
RECORDS: list[dict] = []  # every case's line, for bench/results/probe.json


def tally(case: str, ok: bool, **line: str) -> None:
    """Count a case as passed or failed, and keep its line for ``--json``."""
    RESULTS.append(ok)
    RECORDS.append({"case": case, "ok": ok, **line})


def report(case: str, sent: str, got: str, expected: str, ok: bool, target: Target) -> None:
    """One line: the case, what was sent, what came back, what was expected, and
    whether a good request (REST and gRPC) was answered right after."""
    after = good_rest(target) and good_grpc(target)
    passed = ok and after
    then = "answered" if after else "NOT ANSWERED"
    tally(case, passed, sent=sent, got=got, expected=expected, then=then)
    print(
        f"{'ok  ' if passed else 'FAIL'} {case:4} sent: {sent} | got: {got} | "
        f"expected: {expected} | then a good request: {then}",
        flush=True,
    )


def not_run(case: str, sent: str, why: str) -> None:
    """A case that cannot be replayed here: said so, counted neither ok nor failed."""
    NOT_RUN.append(case)
    RECORDS.append({"case": case, "ok": None, "sent": sent, "got": f"not runnable: {why}"})
    print(f"n/a  {case:4} sent: {sent} | not runnable: {why}", flush=True)

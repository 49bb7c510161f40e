"""Peers that open requests and then send nothing, or a byte now and then, hold no
worker and no slot: everyone else is answered at once.

With grpcio's thread-per-call server, eight gRPC calls that sent their headers but
never their message held all eight workers, and every other call failed
DEADLINE_EXCEEDED until they were cancelled. REST took a slot before reading the body,
so 32 bodies sent a byte a second delayed a 10 ms prediction by 28 s.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import numpy as np
import pytest
from support.helpers import models_copy, outputs, predict_request, rest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

PREDICT = "/tensorflow.serving.PredictionService/Predict"
HELD = 64


@pytest.fixture(scope="module")
def server(exported_model: Path, start_server, tmp_path_factory):
    model_dir = models_copy(exported_model, tmp_path_factory.mktemp("slow-peers"))
    return start_server(model_dir, "--rest-timeout-seconds", "20")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(3).random((2, 32, 32, 3), dtype=np.float32)


def _never():
    """A request stream that sends nothing: the call's headers go out, no message."""
    time.sleep(3600)
    yield b""


def test_stalled_grpc_calls_hold_no_worker(server, prediction, images):
    with grpc.insecure_channel(server.grpc_address) as stalling:
        send_nothing = stalling.stream_unary(
            PREDICT, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
        )
        stalled = [send_nothing.future(_never()) for _ in range(HELD)]
        try:
            time.sleep(1)  # every stalled call has reached the server
            assert not any(call.done() for call in stalled)
            prediction.Predict(predict_request(images, "predict_label"), timeout=30)  # connected
            start = time.monotonic()
            response = prediction.Predict(predict_request(images, "predict_label"), timeout=5)
            took = time.monotonic() - start
        finally:
            for call in stalled:
                call.cancel()
    assert outputs(response)["probabilities"].shape == (2, 10)
    assert took < 1, f"a good Predict took {took:.1f} s beside {HELD} stalled calls"


def _slow_body(server) -> socket.socket:
    """A REST predict that declares 100,000 bytes and has sent one."""
    address = urlsplit(server.rest_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    sock.sendall(
        b"POST /v1/models/dann:predict HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    return sock


def test_slow_rest_bodies_hold_no_slot(server, images):
    """64 slow bodies, twice the 32 slots: a good predict is answered within 1 s."""
    body = {"instances": images.tolist()}
    assert rest(server, "/v1/models/dann:predict", body)[0] == 200  # warm
    slow = [_slow_body(server) for _ in range(HELD)]
    try:
        time.sleep(1)
        start = time.monotonic()
        code, answer = rest(server, "/v1/models/dann:predict", body)
        took = time.monotonic() - start
    finally:
        for sock in slow:
            sock.close()
    assert code == 200 and len(answer["predictions"]) == 2, answer
    assert took < 1, f"a good REST predict took {took:.1f} s beside {HELD} slow bodies"


def test_a_call_that_never_sends_its_message_ends_at_the_message_deadline(tmp_path):
    """In process, with a 0.5 s message deadline (30 s by default): the stalled call is
    answered DEADLINE_EXCEEDED, and a call sent meanwhile is answered."""
    from dann_serve.serving.grpc_api import GrpcServer
    from dann_serve.serving.limits import Limits
    from dann_serve.serving.registry import ModelRegistry

    running = GrpcServer(ModelRegistry(tmp_path), "127.0.0.1:0", Limits(), 2, message_seconds=0.5)
    running.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            send_nothing = channel.stream_unary(
                "/tensorflow.serving.ModelService/GetModelStatus",
                request_serializer=lambda raw: raw,
                response_deserializer=lambda raw: raw,
            )
            stalled = send_nothing.future(_never(), timeout=10)
            status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "absent"
            with pytest.raises(grpc.RpcError) as answered:
                status(request, timeout=5)
            assert answered.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as ended:
                stalled.result(timeout=5)
    finally:
        running.stop(grace=0)
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "did not arrive within 0.5 s" in ended.value.details()


def test_the_bodies_budget_makes_a_taker_wait_until_bytes_are_given_back():
    from dann_serve.serving.admission import ByteBudget

    async def scenario() -> list[str]:
        budget, events = ByteBudget(100), []
        await budget.take(80)

        async def second() -> None:
            await budget.take(50)  # 130 > 100: waits
            events.append("second took 50")

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.05)
        events.append(f"used {budget.used}")
        budget.give_back(80)
        await waiting
        events.append(f"used {budget.used}")
        budget.give_back(50)
        await budget.take(500)  # alone over the total: allowed, nobody else holds any
        events.append(f"used {budget.used}")
        return events

    assert asyncio.run(scenario()) == ["used 80", "second took 50", "used 50", "used 500"]

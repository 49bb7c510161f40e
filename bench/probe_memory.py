"""Cases 7 and 8 of ``bench/probe.py``: the server's resident memory after large
requests (REST, then gRPC messages under 8 MiB) and over version add/delete cycles.
They need the server's process, so they run only when the probe started the server
itself (``--model-dir``).
"""

from __future__ import annotations

import shutil
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.probe_wire import MODEL, Target, json_body, post, predict, raw_http, report


def _settle(target: Target) -> float:
    time.sleep(2)
    return target.rss_mb()


def _large_requests(target: Target, count: int, images: int, clients: int = 4) -> list[str]:
    """``count`` REST predicts of ``images`` images from ``clients`` threads: the statuses
    ("0" for no answer; the error's name when the server closed while the body was still
    being sent, as it does at its deadline on a loaded machine)."""
    batch = np.random.default_rng(images).random((images, 32, 32, 3), dtype=np.float32)
    body = post(f"/v1/models/{MODEL}:predict", json_body({"instances": batch.tolist()}))
    statuses: list[str] = []

    def client(share: int) -> None:
        for _ in range(share):
            try:
                answers, _ = raw_http(target, body, wait=120)
            except OSError as error:
                statuses.append(type(error).__name__)
                continue
            statuses.append(str(answers[0][0]) if answers else "0")

    threads = [threading.Thread(target=client, args=(count // clients,)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def rgba16_png(side: int = 2048) -> bytes:
    """A ``side`` x ``side`` 16-bit RGBA PNG of smooth ramps and one noisy byte per
    pixel: 6.8 MiB, under the 8 MiB above which the server already trims after
    each request."""
    ramp = np.linspace(0, 65535, side, dtype=np.uint16)
    pixels = np.empty((side, side, 4), ">u2")
    pixels[..., 0] = ramp[None, :]
    pixels[..., 1] = ramp[:, None]
    pixels[..., 2] = np.random.default_rng(7).integers(0, 256, (side, side), dtype=np.uint16)
    pixels[..., 3] = 65535
    data = pixels.view(np.uint8).reshape(side, side * 8)
    up = np.diff(data, axis=0, prepend=np.zeros((1, side * 8), np.uint8))  # filter "Up"
    rows = np.hstack([np.full((side, 1), 2, np.uint8), up]).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)  # RGBA, 16 bits
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 6))
        + chunk(b"IEND", b"")
    )


def _grpc_request(signature: str, images: np.ndarray | None = None, png: bytes = b""):
    from tensorflow_serving.apis import predict_pb2

    from dann_client.tensors import fill_tensor_proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    tensor = request.inputs["images"]
    if images is not None:
        fill_tensor_proto(tensor, images)
    else:
        tensor.dtype = 7  # DT_STRING
        tensor.tensor_shape.dim.add(size=1)
        tensor.string_val.append(png)
    return request


def _grpc_sequence(target: Target, warm: float) -> None:
    """Case 7c: the gRPC requests under 8 MiB that once kept their memory."""
    batch = np.random.default_rng(1).integers(0, 256, (1024, 32, 32, 3), dtype=np.uint8)
    uint8 = _grpc_request("predict_label_uint8", batch)
    png = _grpc_request("predict_image", png=rgba16_png())
    failed = 0
    for request, count in ((uint8, 24), (png, 24)):
        for _ in range(count):
            failed += _failed(target, request)
    with ThreadPoolExecutor(8) as pool:
        failed += sum(pool.map(lambda _: _failed(target, png), range(32)))
    at_2s = _settle(target)
    time.sleep(18)
    rss = target.rss_mb()
    report(
        "7c",
        f"gRPC: 24 uint8 batches of 1,024 images ({uint8.ByteSize() / 2**20:.1f} MiB), "
        f"24 predict_image of a 2048x2048 RGBA16 PNG ({png.ByteSize() / 2**20:.1f} MiB), "
        "32 more 8 at a time",
        f"{failed} failed; RSS {rss:.0f} MB 20 s later ({at_2s:.0f} MB at 2 s; "
        f"{100 * (rss / warm - 1):+.1f}% of warm-up)",
        "RSS within 10% of its level after warm-up",
        failed == 0 and rss <= 1.1 * warm,
        target,
    )


def _failed(target: Target, request) -> int:
    import grpc

    try:
        predict(target, request=request, timeout=120)
    except grpc.RpcError:
        return 1
    return 0


def wait_status(target: Target, version: int, state: str, timeout: float = 60) -> bool:
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
                f"statuses {', '.join(sorted(set(statuses)))}, RSS {rss:.0f} MB "
                f"({100 * (rss / warm - 1):+.1f}% of warm-up)",
                "RSS within 10% of its level after warm-up",
                rss <= 1.1 * warm and "0" not in statuses and "500" not in statuses,
                target,
            )
        _grpc_sequence(target, warm)
    if "8" not in skip:
        root = target.server.model_dir / MODEL
        version = max(int(p.name) for p in root.iterdir() if p.name.isdigit()) + 1
        start_rss, ok = _settle(target), True
        for _ in range(20):
            staging = root / f".staging-{version}-probe"
            shutil.copytree(root / str(version - 1), staging)
            staging.rename(root / str(version))
            ok &= wait_status(target, version, "AVAILABLE")
            shutil.rmtree(root / str(version))
            ok &= wait_status(target, version, "END")
        rss = _settle(target)
        report(
            "8",
            f"20 cycles: version {version} added, served, deleted, unloaded",
            f"RSS {start_rss:.0f} -> {rss:.0f} MB ({100 * (rss / warm - 1):+.1f}% of warm-up)",
            "RSS within 10% of its level after warm-up",
            ok and rss <= 1.1 * warm,
            target,
        )

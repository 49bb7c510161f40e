"""Cases 7 and 8 of ``bench/probe.py``: the server's resident memory after large
requests and over version add/delete cycles. Both need the server's process, so they
run only when the probe started the server itself (``--model-dir``).
"""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np

from bench.probe_wire import MODEL, Target, json_body, post, raw_http, report


def _settle(target: Target) -> float:
    time.sleep(2)
    return target.rss_mb()


def _large_requests(target: Target, count: int, images: int, clients: int = 4) -> list[int]:
    """``count`` REST predicts of ``images`` images from ``clients`` threads: the statuses."""
    batch = np.random.default_rng(images).random((images, 32, 32, 3), dtype=np.float32)
    body = post(f"/v1/models/{MODEL}:predict", json_body({"instances": batch.tolist()}))
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

"""Cases of ``bench/probe.py`` about what the server finds on disk while it polls: a
version folder past int64 (14), an emptied ``models.config`` (15) and a folder whose
name ``str.isdigit`` takes and ``int`` refuses (16). They edit the model tree, so they
run only on the private copy the probe serves (``--model-dir``), and each puts the
tree back as it found it.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.probe_memory import wait_status
from bench.probe_wire import MODEL, Target, not_run, report

CONFIG = "models.config"


def _served(target: Target) -> int:
    """The newest version the server reports AVAILABLE, over gRPC."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    with grpc.insecure_channel(target.grpc) as channel:
        answer = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            request, timeout=10
        )
    return max(v.version for v in answer.model_version_status if v.state == 30)  # AVAILABLE


def watch(target: Target, seconds: float) -> Counter:
    """Predicts and status requests over gRPC for ``seconds``: how each was answered
    ("predict v1", "predict NOT_FOUND", "status OK", ...)."""
    import grpc
    from tensorflow_serving.apis import (
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    from dann_client.tensors import fill_tensor_proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    fill_tensor_proto(request.inputs["images"], np.full((1, 32, 32, 3), 0.5, np.float32))
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = MODEL
    seen: Counter = Counter()
    end = time.monotonic() + seconds
    with grpc.insecure_channel(target.grpc) as channel:
        predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        while time.monotonic() < end:
            try:
                answer = predictions.Predict(request, timeout=10)
                seen[f"predict v{answer.model_spec.version.value}"] += 1
            except grpc.RpcError as error:
                seen[f"predict {error.code().name}"] += 1
            try:
                models.GetModelStatus(status, timeout=10)
                seen["status OK"] += 1
            except grpc.RpcError as error:
                seen[f"status {error.code().name}"] += 1
            time.sleep(0.1)
    return seen


def _only(seen: Counter, version: int) -> bool:
    return set(seen) == {f"predict v{version}", "status OK"}


def _counts(seen: Counter) -> str:
    return ", ".join(f"{count} {what}" for what, count in sorted(seen.items()))


def _land(root: Path, source: Path, name: str) -> Path:
    """A copy of ``source`` named ``name``, whole at once (staged, then renamed in)."""
    staging = root / f".staging-probe-{source.name}"
    shutil.copytree(source, staging)
    return staging.rename(root / name)


def case_version_past_int64(target: Target) -> None:
    """A version folder past int64 must be ignored, not served."""
    root = target.server.model_dir / MODEL
    served = _served(target)
    folder = _land(root, root / str(served), "9" * 20)
    try:
        during = watch(target, 4)
    finally:
        shutil.rmtree(folder)
    after = watch(target, 3)
    report(
        "14",
        f"version folder {folder.name} (a copy of {served}) for 4 s, then deleted",
        f"with it: {_counts(during)}; deleted: {_counts(after)}",
        f"not served: every predict from version {served}, status OK, before and after",
        _only(during, served) and _only(after, served),
        target,
    )


def case_empty_config(target: Target) -> None:
    """An emptied config is a write caught halfway: keep serving."""
    config = target.server.model_dir / CONFIG
    if not config.is_file():
        not_run("15", f"{CONFIG} truncated", f"the served tree has no {CONFIG}")
        return
    served, text = _served(target), config.read_text()
    log_before = len(target.server.log().splitlines())
    config.write_text("")  # what `: > models.config` does
    try:
        seen = watch(target, 5)
        written = len(target.server.log().splitlines()) - log_before
    finally:
        config.write_text(text)
        wait_status(target, served, "AVAILABLE")  # served again, for the cases after
    report(
        "15",
        f"{CONFIG} truncated to 0 bytes for 5 s (the server polls every second)",
        f"{_counts(seen)}; {written} log lines",
        f"still served (every predict from version {served}), at most 2 log lines",
        _only(seen, served) and written <= 2,
        target,
    )


def case_superscript_folder(target: Target) -> None:
    """A folder that is no version must not stop polling."""
    root = target.server.model_dir / MODEL
    served = _served(target)
    odd = _land(root, root / str(served), "\u00b2")
    new = served + 1
    log_before = len(target.server.log().splitlines())
    start = time.monotonic()
    try:
        _land(root, root / str(served), str(new))
        loaded = wait_status(target, new, "AVAILABLE", timeout=60)
        took = time.monotonic() - start
        written = target.server.log().splitlines()[log_before:]
    finally:
        shutil.rmtree(odd)
        shutil.rmtree(root / str(new), ignore_errors=True)
    wait_status(target, served, "AVAILABLE")  # back to what was served
    naming = [line for line in written if "\u00b2" in line or "poll failed" in line]
    report(
        "16",
        f"a version folder named \u00b2, then a good version {new}",
        f"version {new} {'AVAILABLE' if loaded else 'NOT loaded'} after {took:.1f} s; "
        f"{len(naming)} of {len(written)} log lines meanwhile name the folder or a failed poll",
        f"version {new} loaded; the odd folder named in the log once, not at every poll",
        loaded and len(naming) <= 1,
        target,
    )


CASES = {
    "14": case_version_past_int64,
    "15": case_empty_config,
    "16": case_superscript_folder,
}

"""Our ways of predicting a folder of image files, as ``client_throughput.py`` times
them: the ``dann-client`` command line (today's, or the one of an earlier commit), the
library in process, and two ceilings (requests from pixels already in memory, and the
SavedModel with no server at all)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from bench._common import ROOT, client_command, newest_version
from dann_client.contract import DEFAULT_BATCH_SIZE as BATCH
from dann_client.contract import DEFAULT_IN_FLIGHT as IN_FLIGHT
from dann_client.contract import PREDICT_LABEL as SIGNATURE
from dann_client.preprocessing import to_model_input
from dann_client.remote import Wire
from dann_serve.serving.model_config import add_model_to_config
from harness.exports import copy_without_signatures

OLD_MODEL = "old"  # the export without predict_label's twins, as older exports are


def serving_copy(model_dir: Path, workdir: Path) -> Path:
    """A copy of the model tree with the newest ``dann`` also served as ``old``, without
    ``predict_image`` and ``predict_label_uint8``: the float32 client's model. The
    user's tree is left as it is."""
    copy = workdir / "served"
    shutil.copytree(model_dir, copy)
    copy_without_signatures(newest_version(copy), copy / OLD_MODEL / "1")
    add_model_to_config(copy / "models.config", OLD_MODEL)
    return copy


def ours_cli(
    address: str, directory: Path, model: str = "dann", client: Path | None = None
) -> Callable[[], int]:
    """``dann-client predict DIR --json --server ADDRESS --model MODEL > /dev/null``, run
    as :func:`predict_command` says."""
    command, env = predict_command(address, [directory], model, client)

    def run() -> int:
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=env)
        return len(os.listdir(directory))

    return run


def predict_command(
    address: str, inputs: list[Path], model: str, client: Path | None
) -> tuple[list[str], dict[str, str] | None]:
    """``dann-client predict INPUTS --json --server ADDRESS --model MODEL`` and the
    environment to run it in: the installed client, or with ``client``, that folder's
    ``dann_client`` (``python -m``)."""
    if client is None:
        start, env = client_command(), None
    else:
        start = [sys.executable, "-m", "dann_client"]
        env = {**os.environ, "PYTHONPATH": str(client)}
    command = [*start, "predict", *map(str, inputs), "--json", "--server", address]
    return [*command, "--model", model], env


def filed_client(rev: str, workdir: Path) -> Path | None:
    """The ``client/`` folder of commit ``rev`` (``git archive``), to run that older,
    float32-only client in the same run; None, with a note, where git or the commit is
    missing (a copy without history)."""
    if not rev:
        return None
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "client"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"no float32-only client ({rev}): {error}", flush=True)
        return None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(workdir / "filed", filter="data")
    return workdir / "filed" / "client"


def ours_library(
    address: str, directory: Path, wires: tuple[Wire, ...] | None = None
) -> Callable[[], int]:
    """``predict_files`` on the folder, each result printed as JSON to ``os.devnull``;
    ``wires`` as ``GrpcBackend`` takes it (float32 only: what a float32-only client sends)."""
    from dann_client.inputs import expand_inputs
    from dann_client.output import prediction_json
    from dann_client.predict import predict_files
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    def run() -> int:
        count = 0
        with open(os.devnull, "w") as out, Transport(address) as transport:
            backend = GrpcBackend(transport, wires=wires)
            for result in predict_files(expand_inputs([str(directory)]), backend):
                out.write(prediction_json(result) + "\n")
                count += 1
        return count

    return run


def wire_ceiling(
    address: str, images: np.ndarray, wires: tuple[Wire, ...] | None = None
) -> Callable[[], int]:
    """The same requests as ours (the client's batch size and batches in flight) from uint8
    pixels already in memory, nothing read or printed: what the server gives a client that
    costs nothing."""
    from dann_client.predict import predict_arrays
    from dann_client.service import GrpcBackend
    from dann_client.transport import Transport

    batches = np.array_split(images, range(BATCH, len(images), BATCH))

    def run() -> int:
        with Transport(address) as transport, ThreadPoolExecutor(IN_FLIGHT) as pool:
            backend = GrpcBackend(transport, wires=wires)
            list(pool.map(lambda batch: predict_arrays(backend, batch), batches))
        return len(images)

    return run


def model_in_process(version_dir: Path, images: np.ndarray) -> Callable[[], int]:
    """The SavedModel called in this process on the client's batches: the model's own speed
    on this machine, with no server, wire or files at all."""
    function = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]
    floats = to_model_input(images)
    batches = [tf.constant(b) for b in np.array_split(floats, range(BATCH, len(floats), BATCH))]

    def run() -> int:
        for batch in batches:
            function(images=batch)["label"].numpy()
        return len(images)

    return run


def cli_labels(
    address: str, paths: list[Path], model: str = "dann", client: Path | None = None
) -> list[int]:
    command, env = predict_command(address, paths, model, client)
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return [json.loads(line)["label"] for line in result.stdout.splitlines()]

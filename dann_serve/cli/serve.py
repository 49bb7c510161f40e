"""``export`` and ``serve``: a run into a versioned model, and that model over the wire."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dann_client.contract import GRPC_PORT, MIB, REST_PORT, SERVER_MAX_MESSAGE_BYTES
from dann_serve.cli.common import (
    EXIT_USAGE,
    fail,
    model_dir_option,
)
from dann_serve.runtime import load_tensorflow
from dann_serve.serving.limits import (
    DEFAULT_CAPTURE_MAX_IMAGES,
    DEFAULT_CAPTURE_RATE,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_TENSOR_BYTES,
    DEFAULT_REST_TIMEOUT,
)
from dann_serve.serving.memory import one_heap

if TYPE_CHECKING:
    from dann_serve.serving.capture import CaptureOptions


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@model_dir_option()
@click.option("--name", default="dann", show_default=True, help="Model name under --model-dir.")
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    default=None,
    help="Version number [default: the next free one].",
)
@click.option("--force", is_flag=True, help="Replace an existing version.")
def export(run: Path, model_dir: Path, name: str, version: int | None, force: bool) -> None:
    """Export RUN as a SavedModel (+ ONNX, warm-up, export.json) under MODEL_DIR/NAME/VERSION."""
    load_tensorflow()
    from dann_serve.export import ExportError, export_run
    from dann_serve.training.rundir import RunError

    try:
        result = export_run(run, model_dir, name, version, force)
    except (ExportError, RunError) as error:
        fail(str(error))
    click.echo(result.path)
    if "target_accuracy" in result.report:  # no target labels: say so, print no number
        click.echo(f"{result.path}: target accuracy {result.report['target_accuracy']}", err=True)


@click.command()
@model_dir_option("Tree of <name>/<version>/ SavedModels, as TF Serving reads it.")
@click.option(
    "--model-config-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="model_config_list text proto [default: MODEL_DIR/models.config"
    " if it exists, else every model in MODEL_DIR].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 exposes the server to the network.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=GRPC_PORT,
    show_default=True,
    help="gRPC port (0: any free port).",
)
@click.option(
    "--rest-port",
    type=click.IntRange(0, 65535),
    default=REST_PORT,
    show_default=True,
    help="REST port (0: no REST, as TensorFlow Serving).",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="How often to look for new versions on disk.",
)
@click.option(
    "--max-message-mb",
    type=click.IntRange(min=1),
    default=SERVER_MAX_MESSAGE_BYTES // MIB,
    show_default=True,
    help="Largest gRPC message or REST body accepted.",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_BATCH,
    show_default=True,
    help="Most images (first dimension of an input) in one request; more: INVALID_ARGUMENT.",
)
@click.option(
    "--max-tensor-mb",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_TENSOR_BYTES // MIB,
    show_default=True,
    help="Largest decoded input tensor; bigger: INVALID_ARGUMENT (a REST body's JSON"
    " values are bounded by it too, and predict_image's files: their bytes, and the"
    " pixels their headers declare at 4 bytes each).",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_IN_FLIGHT,
    show_default=True,
    help="Requests read, decoded or run at once, per protocol; past it gRPC answers"
    " RESOURCE_EXHAUSTED and REST requests wait, their bodies unread.",
)
@click.option(
    "--rest-timeout-seconds",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_REST_TIMEOUT,
    show_default=True,
    help="Deadline of a whole REST request, first byte to answer (TF Serving's"
    " --rest_api_timeout_in_ms); past it: 504.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM certificate chain: serve gRPC over TLS.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--access-log",
    metavar="PATH|-",
    default=None,
    help="One line per REST request and gRPC call (time, peer, request, model, version,"
    " signature, status, bytes, milliseconds), appended to PATH; - for stdout.",
)
@click.option(
    "--monitor-window",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Images in each model version's live monitor window (GET"
    " /v1/models/<name>/monitor, dann_serve_monitor_* metrics).",
)
@click.option("--no-monitor", is_flag=True, help="No live monitor: answers are not watched at all.")
@click.option(
    "--no-ui",
    is_flag=True,
    help="No web page at / on the REST port (it shows the models, their monitor, and"
    " answers a drawn or dropped digit): 404 there.",
)
@click.option(
    "--capture-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep a random sample of the images served by the label signatures as files"
    " under DIR/<name>/<version>/ (owner-only; a ready --target). Off by default.",
)
@click.option(
    "--capture-rate",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="With --capture-dir: the chance each served image is kept"
    f" [default: {DEFAULT_CAPTURE_RATE}].",
)
@click.option(
    "--capture-max-images",
    type=click.IntRange(min=1),
    default=None,
    help="With --capture-dir: the most images kept per model version"
    f" [default: {DEFAULT_CAPTURE_MAX_IMAGES}].",
)
def serve(
    model_dir: Path,
    model_config_file: Path | None,
    host: str,
    port: int,
    rest_port: int,
    poll_seconds: float,
    max_message_mb: int,
    max_batch_size: int,
    max_tensor_mb: int,
    max_in_flight: int,
    rest_timeout_seconds: float,
    tls_cert: Path | None,
    tls_key: Path | None,
    access_log: str | None,
    monitor_window: int,
    no_monitor: bool,
    no_ui: bool,
    capture_dir: Path | None,
    capture_rate: float | None,
    capture_max_images: int | None,
) -> None:
    """Serve MODEL_DIR over TensorFlow Serving's gRPC and REST APIs until SIGINT/SIGTERM.

    Prometheus metrics are on the REST port at /monitoring/prometheus/metrics, and a
    web page at / (neither with --rest-port 0)."""
    if bool(tls_cert) != bool(tls_key):
        fail("--tls-cert and --tls-key go together", EXIT_USAGE)
    capture = _capture_options(capture_dir, capture_rate, capture_max_images)
    _prepare_process()
    from dann_serve.serving.limits import Limits
    from dann_serve.serving.registry import ConfigError
    from dann_serve.serving.server import ServeOptions
    from dann_serve.serving.server import serve as run_server

    options = ServeOptions(
        model_dir=model_dir,
        host=host,
        port=port,
        rest_port=rest_port,
        config_file=model_config_file,
        poll_seconds=poll_seconds,
        limits=Limits(
            max_batch=max_batch_size,
            max_message_bytes=max_message_mb * MIB,
            max_tensor_bytes=max_tensor_mb * MIB,
            max_in_flight=max_in_flight,
            rest_timeout=rest_timeout_seconds,
        ),
        tls_cert=tls_cert,
        tls_key=tls_key,
        access_log=access_log,
        monitor_window=None if no_monitor else monitor_window,
        ui=not no_ui,
        capture=capture,
    )
    try:
        run_server(options)
    except (ConfigError, OSError) as error:
        fail(str(error))


def _prepare_process() -> None:
    """The allocators, then TensorFlow. oneDNN's allocator pools every large tensor for
    good (a BFC arena grown to the largest batch ever run, never returned); the system
    allocator's memory goes back after a large request (serving.memory). Read when
    TensorFlow loads."""
    os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")
    one_heap()  # before TensorFlow starts its threads
    load_tensorflow()


def _capture_options(
    folder: Path | None, rate: float | None, max_images: int | None
) -> CaptureOptions | None:
    """``serve``'s capture options (None: capture off); its bounds given without the
    folder are a usage error, not silently ignored."""
    if folder is None:
        if rate is not None or max_images is not None:
            fail("--capture-rate and --capture-max-images need --capture-dir", EXIT_USAGE)
        return None
    from dann_serve.serving.capture import CaptureOptions

    return CaptureOptions(
        folder,
        DEFAULT_CAPTURE_RATE if rate is None else rate,
        DEFAULT_CAPTURE_MAX_IMAGES if max_images is None else max_images,
    )

"""``export`` and ``serve``: a run into a versioned model, and that model over the wire."""

from __future__ import annotations

from pathlib import Path

import click

from dann_client.contract import GRPC_PORT, MIB, REST_PORT, SERVER_MAX_MESSAGE_BYTES
from dann_serve.cli.common import (
    EXIT_USAGE,
    fail,
)
from dann_serve.runtime import load_tensorflow


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
)
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
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
    help="Tree of <name>/<version>/ SavedModels, as TF Serving reads it.",
)
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
def serve(
    model_dir: Path,
    model_config_file: Path | None,
    host: str,
    port: int,
    rest_port: int,
    poll_seconds: float,
    max_message_mb: int,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Serve MODEL_DIR over TensorFlow Serving's gRPC and REST APIs until SIGINT/SIGTERM."""
    if bool(tls_cert) != bool(tls_key):
        fail("--tls-cert and --tls-key go together", EXIT_USAGE)
    load_tensorflow()
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
        max_message_bytes=max_message_mb * MIB,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    try:
        run_server(options)
    except (ConfigError, OSError) as error:
        fail(str(error))

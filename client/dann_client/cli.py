"""``dann-client``: the command line over ``dann_client``'s functions.

Thin on purpose: parsing, wiring and printing only. Heavy modules (numpy, PIL,
grpc, protobuf, onnxruntime) are imported inside the commands, so that
``dann-client --help`` and a mistyped option answer at once; this module never
imports TensorFlow, directly or otherwise.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dann_client import contract
from dann_client.errors import EXIT_OK, EXIT_UNREADABLE, ClientError, UsageError

_PROG = "dann-client"
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _server_options(command: Callable) -> Callable:
    """Options shared by every command that talks to a model server."""
    options = [
        click.option(
            "--server",
            default=contract.DEFAULT_SERVER,
            show_default=True,
            metavar="HOST:PORT",
            help="gRPC address of TensorFlow Serving or dann-serve.",
        ),
        click.option(
            "--model",
            default=contract.DEFAULT_MODEL,
            show_default=True,
            help="Model name on the server.",
        ),
        click.option(
            "--version",
            "version",
            type=click.IntRange(min=1),
            default=None,
            help="Model version (default: the server's newest).",
        ),
        click.option(
            "--label",
            "version_label",
            default=None,
            help="Version label instead of a number, e.g. stable.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=contract.DEFAULT_TIMEOUT,
            show_default=True,
            help="Deadline of each request in seconds, connecting included.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            default=contract.DEFAULT_RETRIES,
            show_default=True,
            help="Extra attempts, with backoff, when UNAVAILABLE.",
        ),
        click.option("--tls", is_flag=True, help="Use TLS (implied by the certificate options)."),
        click.option("--ca-cert", type=_FILE, help="PEM roots to verify the server with."),
        click.option("--client-cert", type=_FILE, help="PEM certificate for mutual TLS."),
        click.option("--client-key", type=_FILE, help="PEM private key for --client-cert."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object per line."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _predict_options(command: Callable) -> Callable:
    """Options of the commands that send images (predict, domain)."""
    options = [
        click.argument("inputs", nargs=-1, required=True, metavar="IMAGE_OR_DIR..."),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            show_default=True,
            default=contract.DEFAULT_BATCH_SIZE,
            help="Images per request.",
        ),
        click.option(
            "--top-k",
            type=click.IntRange(min=1),
            default=None,
            help="Show the K most probable classes instead of all.",
        ),
        click.option(
            "--backend",
            type=click.Choice(["grpc", "onnx"]),
            default=None,
            help="Where answers come from [default: grpc, or onnx with --onnx].",
        ),
        click.option(
            "--onnx",
            "onnx_path",
            type=click.Path(exists=True, path_type=Path),
            help="ONNX file, or an export's version or onnx/ directory.",
        ),
        click.option(
            "--background",
            default="white",
            show_default=True,
            help="Colour that transparent pixels are flattened onto.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return _server_options(command)


def _reports_errors(command: Callable) -> Callable:
    """Turn the library's errors into one stderr line and the documented exit status."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = command(*args, **kwargs)
        except ClientError as error:
            click.echo(f"{_PROG}: {error}", err=True)
            sys.exit(error.exit_code)
        sys.exit(code or EXIT_OK)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
# The program's version, from the installed metadata (read only when asked). Only here,
# before a command: after one, --version N is the model version (_server_options).
@click.version_option(package_name="dann-client", prog_name=_PROG)
def cli() -> None:
    """Send digit images to a dann-serve model and print its answers.

    Talks TensorFlow Serving's gRPC API (the Docker image or `dann-serve serve`),
    or runs an exported ONNX model locally with --backend onnx.

    \b
    Exit status: 0 all answered, 1 some inputs unreadable, 2 usage error,
    3 server unreachable or timed out, 4 request rejected by the server.
    """


@cli.command()
@click.option(
    "--signature",
    type=click.Choice(contract.SIGNATURES),
    default=contract.PREDICT_LABEL,
    show_default=True,
    help="Which signature of the model to ask.",
)
@_predict_options
@_reports_errors
def predict(signature: str, **options: Any) -> int:
    """Predict the digit in each image (files, directories, glob patterns, - for stdin)."""
    return _predict(signature, **options)


@cli.command()
@_predict_options
@_reports_errors
def domain(**options: Any) -> int:
    """Ask which domain (source or target) each image looks like it comes from."""
    return _predict(contract.CLASSIFY_DOMAIN, **options)


@cli.command()
@_server_options
@_reports_errors
def status(as_json: bool, **options: Any) -> int:
    """Show the state of each version of the model on the server."""
    from dann_client import output, service

    model = _model_ref(**options)
    with _transport(**options) as transport:
        versions = service.model_status(transport, model)
    for version in versions:
        click.echo(output.status_json(version) if as_json else output.status_text(version))
    return EXIT_OK


@cli.command()
@_server_options
@_reports_errors
def metadata(as_json: bool, **options: Any) -> int:
    """Show the model's signatures with their inputs and outputs."""
    from dann_client import output, service

    model = _model_ref(**options)
    with _transport(**options) as transport:
        found = service.model_metadata(transport, model)
    lines = output.metadata_json(found) if as_json else output.metadata_text(found)
    click.echo("\n".join(lines))
    return EXIT_OK


@cli.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the 32x32 RGB image the model would see.",
)
@click.option(
    "--scale",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Enlarge the output this many times (nearest neighbour) for viewing.",
)
@click.option(
    "--background",
    default="white",
    show_default=True,
    help="Colour that transparent pixels are flattened onto.",
)
@_reports_errors
def preprocess(image: Path, output: Path, scale: int, background: str) -> int:
    """Write IMAGE as the model sees it: upright, RGB, square, 32x32."""
    from dann_client.errors import ImageError
    from dann_client.output import unreadable_text
    from dann_client.preprocessing import load_image, save_image

    try:
        array = load_image(image, background=_colour(background))
    except ImageError as error:
        click.echo(unreadable_text(str(image), str(error)), err=True)
        return EXIT_UNREADABLE
    try:
        save_image(array, output, scale=scale)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot write {output}: {error}") from None
    return EXIT_OK


def _predict(
    signature: str,
    *,
    inputs: tuple[str, ...],
    as_json: bool,
    batch_size: int,
    top_k: int | None,
    background: str,
    **options: Any,
) -> int:
    from dann_client import output
    from dann_client.inputs import Unreadable, expand_inputs
    from dann_client.predict import predict_files

    fill = _colour(background)
    show = output.prediction_json if as_json else output.prediction_text
    unreadable = 0
    backend = _backend(**options)
    # Plain writes, not click.echo: echo flushes (a write syscall) and probes isatty
    # for every line, which showed up in profiles of 10,000-image runs. Python's own
    # buffering keeps a terminal line by line and a pipe in blocks.
    out = sys.stdout
    try:
        paths = expand_inputs(inputs, sys.stdin)
        for result in predict_files(
            paths, backend, signature=signature, batch_size=batch_size, background=fill
        ):
            if isinstance(result, Unreadable):
                unreadable += 1
                out.flush()  # keep stdout and stderr in input order on a shared terminal
                click.echo(output.unreadable_text(result.path, result.reason), err=True)
            else:
                out.write(show(result, top_k) + "\n")
    finally:
        out.flush()
        backend.close()
    return EXIT_UNREADABLE if unreadable else EXIT_OK


def _backend(*, backend: str | None, onnx_path: Path | None, **options: Any):
    if backend is None:
        backend = "onnx" if onnx_path is not None else "grpc"
    if backend == "onnx":
        if onnx_path is None:
            raise click.UsageError("--backend onnx needs --onnx PATH")
        from dann_client.onnx_backend import OnnxBackend

        return OnnxBackend(onnx_path)
    if onnx_path is not None:
        raise click.UsageError("--onnx only applies to --backend onnx")
    from dann_client.service import GrpcBackend

    model = _model_ref(**options)
    return GrpcBackend(_transport(**options), model)


def _model_ref(*, model: str, version: int | None, version_label: str | None, **_: Any):
    from dann_client.service import ModelRef

    if version is not None and version_label is not None:
        raise click.UsageError("give --version or --label, not both")
    return ModelRef(model, version, version_label)


def _transport(
    *,
    server: str,
    timeout: float,
    retries: int,
    tls: bool,
    ca_cert: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    **_: Any,
):
    from dann_client.transport import TlsConfig, Transport

    secure = tls or any(p is not None for p in (ca_cert, client_cert, client_key))
    tls_config = TlsConfig(ca_cert, client_cert, client_key) if secure else None
    return Transport(server, tls=tls_config, timeout=timeout, retries=retries)


def _colour(name: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(name)[:3]
    except ValueError:
        raise click.BadParameter(f"unknown colour {name!r}", param_hint="--background") from None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    # gRPC's C core logs at INFO to stderr by default, e.g. a line for a failed TLS
    # handshake before the client's own one-line error; the CLI's stderr is ours.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    cli.main(args=argv, prog_name=_PROG)


if __name__ == "__main__":
    main()

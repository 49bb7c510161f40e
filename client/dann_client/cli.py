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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dann_client import contract
from dann_client.errors import EXIT_OK, EXIT_UNREADABLE, ClientError, UsageError
from dann_client.options import BACKGROUND_HELP, bounded, predict_options, server_options

if TYPE_CHECKING:
    from dann_client.api import ModelRef
    from dann_client.background import Background
    from dann_client.inputs import Unreadable
    from dann_client.predict import Backend
    from dann_client.remote import ModelServer

_PROG = "dann-client"
# The signatures a user may name, each with what it answers (from the contract's table).
_SIGNATURE_HELP = "Which signature of the model to ask: {}.".format(
    "; ".join(
        f"{name}, {contract.SIGNATURE_ROWS[name].description}" for name in contract.SIGNATURES
    )
)


def _reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
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
# before a command: after one, --version N is the model version (options.server_options).
@click.version_option(
    package_name="dann-client",
    prog_name=_PROG,
    help="Show dann-client's version and exit (after a command: the model version).",
)
def cli() -> None:
    """Send digit images to a dann-serve model and print its answers.

    Talks TensorFlow Serving's gRPC API (--server host:port) or its REST API
    (--server http://host:port), to the Docker image or `dann-serve serve`; $DANN_SERVER
    sets the default server. Or runs an exported ONNX model here with --backend onnx.
    `dann-client --version` prints this program's version; after a command,
    --version N (or --model-version N) picks the model version.

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
    help=_SIGNATURE_HELP,
)
@predict_options
@_reports_errors
def predict(signature: str, **options: Any) -> int:
    """Predict the digit in each image (files, directories, glob patterns, - for stdin)."""
    return _predict(signature, **options)


@cli.command()
@predict_options
@_reports_errors
def domain(**options: Any) -> int:
    """Ask which domain (source or target) each image looks like it comes from."""
    return _predict(contract.CLASSIFY_DOMAIN, **options)


@cli.command()
@server_options
@_reports_errors
def status(fmt: str | None, as_json: bool, **options: Any) -> int:
    """Show the state of each version of the model on the server."""
    from dann_client.output import status_lines

    model = _model_ref(**options)
    server = _server(**options)
    try:
        versions = server.model_status(model)
    finally:
        server.close()
    _echo_lines(status_lines(versions, _format(fmt, as_json)))
    return EXIT_OK


@cli.command()
@server_options
@_reports_errors
def metadata(fmt: str | None, as_json: bool, **options: Any) -> int:
    """Show the model's signatures with their inputs and outputs."""
    from dann_client.output import metadata_lines

    model = _model_ref(**options)
    server = _server(**options)
    try:
        found = server.model_metadata(model)
    finally:
        server.close()
    _echo_lines(metadata_lines(found, _format(fmt, as_json)))
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
    type=bounded(int, 1, 32),
    default=1,
    show_default=True,
    help="Enlarge the output this many times (nearest neighbour) for viewing.",
)
@click.option(
    "--background", default=contract.BACKGROUND_AUTO, show_default=True, help=BACKGROUND_HELP
)
@_reports_errors
def preprocess(image: Path, output: Path, scale: int, background: str) -> int:
    """Write IMAGE as the model sees it: upright, RGB, framed or fitted, 32x32."""
    from dann_client.errors import ImageError
    from dann_client.output import unreadable_text
    from dann_client.preprocessing import load_image, save_image

    try:
        array = load_image(image, background=_background(background))
    except ImageError as error:
        click.echo(unreadable_text(str(image), str(error)), err=True)
        return EXIT_UNREADABLE
    try:
        save_image(array, output, scale=scale)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot write {output}: {error}") from None
    return EXIT_OK


@cli.command()
@click.option(
    "--server",
    default=None,
    metavar="URL",
    help="The server's REST API, http:// or https:// [default: $DANN_SERVER if a URL,"
    f" else http://localhost:{contract.REST_PORT}]. REST only: TensorFlow Serving's gRPC"
    " API has no monitor call.",
)
@click.option("--model", default=contract.DEFAULT_MODEL, show_default=True, help="Model name.")
@click.option(
    "--model-version",
    "--version",
    "version",
    type=bounded(int, 1, 2**63 - 1),
    default=None,
    metavar="N",
    help="One version [default: every version the server serves].",
)
@click.option("--label", "version_label", default=None, help="One version, by its label.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
@click.option(
    "--timeout",
    type=bounded(float, 0, 86_400, low_open=True),
    default=contract.DEFAULT_TIMEOUT,
    show_default=True,
    help="Deadline of the request in seconds.",
)
@click.option(
    "--ca-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM roots to verify an https:// server with.",
)
@_reports_errors
def monitor(
    server: str | None,
    model: str,
    version: int | None,
    version_label: str | None,
    as_json: bool,
    timeout: float,
    ca_cert: Path | None,
) -> int:
    """Show what the server's live monitor sees of each model version: images in its
    window, mean confidence, class shares, the estimated accuracy and whether it can
    be trusted, the drift test against the export's reference (dann-serve serve)."""
    from dann_client.connection import TlsConfig
    from dann_client.monitor import fetch, monitor_lines, rest_server
    from dann_client.rest import RestTransport

    ref = _model_ref(model=model, version=version, version_label=version_label)
    tls = TlsConfig(ca_cert, None, None) if ca_cert else None
    transport = RestTransport(rest_server(server), tls=tls, timeout=timeout, retries=0)
    try:
        versions = fetch(transport, ref)
    finally:
        transport.close()
    _echo_lines(monitor_lines(model, versions, "json" if as_json else "text"))
    return EXIT_OK


def _predict(
    signature: str,
    *,
    inputs: tuple[str, ...],
    fmt: str | None,
    as_json: bool,
    batch_size: int,
    top_k: int | None,
    background: str,
    **options: Any,
) -> int:
    from dann_client.inputs import STDIN, expand_inputs
    from dann_client.output import PredictionWriter, write_results
    from dann_client.predict import predict_files
    from dann_client.progress import Progress

    fill = _background(background)
    writer = PredictionWriter(sys.stdout, _format(fmt, as_json), signature, top_k)
    backend = _backend(**options)
    progress = Progress(sys.stderr, None, enabled=Progress.wanted(sys.stderr, sys.stdout))
    try:
        paths: Iterable[str | Unreadable] = expand_inputs(inputs, sys.stdin)
        if progress.enabled and STDIN not in inputs:
            paths = list(paths)  # a directory walk is quick; the bar then knows the total
            progress.total = len(paths)
        results = predict_files(
            paths, backend, signature=signature, batch_size=batch_size, background=fill
        )
        with progress:
            unreadable = write_results(results, writer, progress)
    finally:
        sys.stdout.flush()
        backend.close()
    return EXIT_UNREADABLE if unreadable else EXIT_OK


def _backend(*, backend: str | None, onnx_path: Path | None, **options: Any) -> Backend:
    if backend is None:
        backend = "onnx" if onnx_path is not None else "server"
    if backend == "onnx":
        if onnx_path is None:
            raise click.UsageError("--backend onnx needs --onnx PATH")
        from dann_client.onnx_backend import OnnxBackend

        return OnnxBackend(onnx_path)
    if onnx_path is not None:
        raise click.UsageError("--onnx only applies to --backend onnx")
    from dann_client.remote import RemoteBackend

    model = _model_ref(**options)  # its usage errors before any connection is made
    return RemoteBackend(_server(**options), model)


def _model_ref(*, model: str, version: int | None, version_label: str | None, **_: Any) -> ModelRef:
    from dann_client.api import ModelRef

    if version is not None and version_label is not None:
        raise click.UsageError("give --version or --label, not both")
    return ModelRef(model, version, version_label)


def _server(
    *,
    server: str,
    timeout: float,
    retries: int,
    tls: bool,
    ca_cert: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    **_: Any,
) -> ModelServer:
    from dann_client.connect import open_server

    return open_server(
        server,
        timeout=timeout,
        retries=retries,
        tls=tls,
        ca_cert=ca_cert,
        client_cert=client_cert,
        client_key=client_key,
    )


def _format(fmt: str | None, as_json: bool) -> str:
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} disagree: give one")
    return "json" if as_json else fmt or "text"


def _background(name: str) -> Background:
    from dann_client.background import parse_background

    try:
        return parse_background(name)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--background") from None


def _echo_lines(lines: list[str]) -> None:
    if lines:
        click.echo("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    # gRPC's C core logs at INFO to stderr by default, e.g. a line for a failed TLS
    # handshake before the client's own one-line error; the CLI's stderr is ours.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    cli.main(args=argv, prog_name=_PROG)


if __name__ == "__main__":
    main()

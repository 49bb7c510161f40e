"""The options the ``dann-client`` commands share, defined once.

Kept apart from the commands (``cli``) so each file stays short; like ``cli`` it
imports nothing heavy, so ``--help`` answers at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dann_client import contract
from dann_client.output import FORMATS

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_INT64_MAX = 2**63 - 1  # a model version is an int64; no count of ours needs more
MAX_TIMEOUT = 86_400.0
"""A day: longer than any request needs, and short enough that every deadline below it
fits gRPC's and the socket's clocks (inf, nan and 1e300 would crash them)."""
MAX_RETRIES = 100


class _FiniteFloatRange(click.FloatRange):
    """click's float range, refusing nan as well, which compares false with any bound."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


def bounded(
    kind: type[int] | type[float], low: float, high: float, *, low_open: bool = False
) -> click.ParamType[Any]:
    """The type of every numeric option: a finite number from ``low`` to ``high``, so
    that an impossible value (inf, nan, 1e300, a version past int64) is a one-line
    usage error naming the option (exit 2) instead of a traceback deep in a transport."""
    if kind is int:
        return click.IntRange(int(low), int(high), min_open=low_open)
    return _FiniteFloatRange(low, high, min_open=low_open)


def server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that talks to a model server."""
    options = [
        click.option(
            "--server",
            default=contract.DEFAULT_SERVER,
            show_default=True,
            envvar=contract.SERVER_ENVIRONMENT,
            show_envvar=True,
            metavar="HOST:PORT|URL",
            help="Model server: host:port for gRPC, or an http:// or https:// URL for "
            "TensorFlow Serving's REST API.",
        ),
        click.option(
            "--model",
            default=contract.DEFAULT_MODEL,
            show_default=True,
            help="Model name on the server.",
        ),
        click.option(
            "--model-version",
            "--version",
            "version",
            type=bounded(int, 1, _INT64_MAX),
            default=None,
            metavar="N",
            help="Model version (default: the server's newest). After a command --version "
            "is this too; before one, `dann-client --version` prints the program's version.",
        ),
        click.option(
            "--label",
            "version_label",
            default=None,
            help="Version label instead of a number, e.g. stable.",
        ),
        click.option(
            "--timeout",
            type=bounded(float, 0, MAX_TIMEOUT, low_open=True),
            default=contract.DEFAULT_TIMEOUT,
            show_default=True,
            help="Deadline of each request in seconds, connecting included.",
        ),
        click.option(
            "--retries",
            type=bounded(int, 0, MAX_RETRIES),
            default=contract.DEFAULT_RETRIES,
            show_default=True,
            help="Extra attempts, with backoff, when the server is unavailable.",
        ),
        *_TLS,
        *_OUTPUT,
    ]
    for option in reversed(options):
        command = option(command)
    return command


_TLS = [
    click.option("--tls", is_flag=True, help="Use TLS (implied by https:// and the certificates)."),
    click.option("--ca-cert", type=_FILE, help="PEM roots to verify the server with."),
    click.option("--client-cert", type=_FILE, help="PEM certificate for mutual TLS."),
    click.option("--client-key", type=_FILE, help="PEM private key for --client-cert."),
]
_OUTPUT = [
    click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help="Output: text lines, JSON lines, or CSV with a header row  [default: text]",
    ),
    click.option("--json", "as_json", is_flag=True, help="Same as --format json."),
]


BACKGROUND_HELP = (
    "Colour behind transparent pixels: auto (black behind light ink, white behind dark "
    "ink), white, black, or any colour such as #202020."
)


def predict_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options of the commands that send images (predict, domain)."""
    options = [
        click.argument("inputs", nargs=-1, required=True, metavar="IMAGE_OR_DIR..."),
        click.option(
            "--batch-size",
            type=bounded(int, 1, _INT64_MAX),
            show_default=True,
            default=contract.DEFAULT_BATCH_SIZE,
            help="Images per request.",
        ),
        click.option(
            "--top-k",
            type=bounded(int, 1, _INT64_MAX),
            default=None,
            help="Show the K most probable classes instead of all.",
        ),
        click.option(
            "--backend",
            type=click.Choice(["server", "onnx", "grpc"]),
            default=None,
            help="Where answers come from: the model server at --server (gRPC or REST; "
            "grpc is its old name), or an ONNX file run here  [default: server, or onnx "
            "with --onnx]",
        ),
        click.option(
            "--onnx",
            "onnx_path",
            type=click.Path(exists=True, path_type=Path),
            help="ONNX file, or an export's version or onnx/ directory.",
        ),
        click.option(
            "--background",
            default=contract.BACKGROUND_AUTO,
            show_default=True,
            help=BACKGROUND_HELP,
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return server_options(command)

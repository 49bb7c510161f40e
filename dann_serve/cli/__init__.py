"""The ``dann-serve`` command: option parsing only; the work lives in the stage packages.

Each command module parses its options and calls plain functions of ``data``,
``training``, ``export``, ``serving`` or ``experiments``, so that the logic is testable
without the CLI. TensorFlow is imported inside each command, not at module level,
so that ``dann-serve --help`` and usage errors answer at once.

May import: every ``dann_serve`` package (lazily, inside the commands, for the heavy ones).
Nothing imports it.
"""

from __future__ import annotations

import click

from dann_serve.cli.adapt import adapt
from dann_serve.cli.experiments import compare, report, reverse_validate
from dann_serve.cli.rollout import promote
from dann_serve.cli.serve import export, serve
from dann_serve.cli.train import evaluate, samples, train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dann-serve")
def main() -> None:
    """Train domain-adversarial digit models, export them, serve them."""


for _command in (
    train,
    adapt,
    evaluate,
    samples,
    compare,
    reverse_validate,
    report,
    export,
    serve,
    promote,
):
    main.add_command(_command)

"""``promote``: move a version label (``stable``, ``canary``) in ``models.config``."""

from __future__ import annotations

from pathlib import Path

import click

from dann_serve.cli.common import fail, model_dir_option


@click.command()
@model_dir_option("Tree of <name>/<version>/ SavedModels, as the server reads it.")
@click.option(
    "--model-config-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The config to change [default: MODEL_DIR/models.config].",
)
@click.option("--name", default="dann", show_default=True, help="Model name in the config.")
@click.option(
    "--version", "version", type=click.IntRange(min=1), required=True, help="Version to label."
)
@click.option("--label", required=True, help="Label to point at it, e.g. stable or canary.")
def promote(
    model_dir: Path, model_config_file: Path | None, name: str, version: int, label: str
) -> None:
    """Point LABEL of model NAME at VERSION in models.config, atomically.

    A running server (dann-serve serve, or TensorFlow Serving polling the file) switches
    at its next poll, without a restart; rollback is a promote back. The version must be
    exported and served by the model's version policy. The file is rewritten in
    protobuf's text format: its fields and opening comments are kept, the comments
    among its fields are not.
    """
    from dann_serve.serving.model_config import ConfigError
    from dann_serve.serving.model_config import promote as move_label

    try:
        moved = move_label(model_dir, name, version, label, model_config_file)
    except (ConfigError, OSError) as error:
        fail(str(error))
    before = "new" if moved.previous is None else f"was {moved.previous}"
    click.echo(f"{moved.config_file}: {name} label {label} -> version {version} ({before})")

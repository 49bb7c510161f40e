"""``python -m dann_serve``: the ``dann-serve`` command."""

from dann_serve.cli import main

main(prog_name="dann-serve")

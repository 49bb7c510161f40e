"""``python -m dann_client``: the same as the ``dann-client`` command."""

from dann_client.cli import main

main()

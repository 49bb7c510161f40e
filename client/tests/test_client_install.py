"""``pip install ./client`` into a fresh virtual environment brings no TensorFlow.

It creates a venv and installs from the package index (~10 s with a warm pip
cache); ``make test`` and CI run it. Offline, ``DANN_CLIENT_INSTALL_TEST=0`` skips it.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("DANN_CLIENT_INSTALL_TEST") == "0",
    reason="DANN_CLIENT_INSTALL_TEST=0: fresh-venv install of ./client skipped",
)


def test_fresh_install_has_no_tensorflow_and_works(tmp_path):
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    python = bin_dir / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(CLIENT_DIR)], check=True, timeout=600
    )

    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], check=True, capture_output=True, text=True
    )
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert "dann-client" in names
    assert not {n for n in names if n.startswith(("tensorflow", "keras", "tf-", "tf_"))}

    imports = subprocess.run(
        [python, "-X", "importtime", "-c", "import dann_client.cli"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "tensorflow" not in imports.stderr

    help_text = subprocess.run(
        [bin_dir / "dann-client", "--help"], check=True, capture_output=True, text=True
    )
    assert "predict" in help_text.stdout

"""``pip install ./client`` into a fresh virtual environment brings no TensorFlow.

It creates a venv and installs from the package index (~10 s with a warm pip
cache), with the checkout's constraints.txt when there is one (as ``make`` does), so
the versions are the locked ones; ``make test`` and CI run it. Offline,
``DANN_CLIENT_INSTALL_TEST=0`` skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest
from PIL import Image

CLIENT_DIR = Path(__file__).resolve().parents[1]
LOCK = CLIENT_DIR.parent / "constraints.txt"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("DANN_CLIENT_INSTALL_TEST") == "0",
        reason="DANN_CLIENT_INSTALL_TEST=0: fresh-venv install of ./client skipped",
    ),
]


def _run(*command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def test_fresh_install_has_no_tensorflow_and_works(tmp_path):
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    python = bin_dir / "python"
    constraints = ["-c", str(LOCK)] if LOCK.exists() else []
    # From a copy: building in place writes client/build/ into the checkout, where the
    # other tests (in another process under `make test`) read.
    source = tmp_path / "client"
    skipped = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests")
    shutil.copytree(CLIENT_DIR, source, ignore=skipped)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", *constraints, str(source)],
        check=True,
        timeout=600,
    )

    listed = _run(python, "-m", "pip", "list", "--format=json")
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert "dann-client" in names
    assert not {n for n in names if n.startswith(("tensorflow", "keras", "tf-", "tf_"))}
    _run(python, "-m", "pip", "check")

    imports = _run(python, "-X", "importtime", "-c", "import dann_client.cli")
    assert "tensorflow" not in imports.stderr

    help_text = _run(bin_dir / "dann-client", "--help")
    assert "predict" in help_text.stdout

    # One version, written in client/pyproject.toml, read back from the metadata.
    version = tomllib.loads((CLIENT_DIR / "pyproject.toml").read_text())["project"]["version"]
    shown = _run(bin_dir / "dann-client", "--version")
    assert shown.stdout.split()[0].rstrip(",") == "dann-client"
    assert shown.stdout.split()[-1] == version
    dunder = _run(python, "-c", "import dann_client; print(dann_client.__version__)")
    assert dunder.stdout.strip() == version

    # It runs: numpy and Pillow without TensorFlow, the model's view of an image.
    Image.new("L", (20, 28), 200).save(tmp_path / "digit.png")
    _run(bin_dir / "dann-client", "preprocess", tmp_path / "digit.png", "-o", tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as seen:
        assert (seen.size, seen.mode) == ((32, 32), "RGB")

"""The tests' tiny domains, and ``dann-serve`` with them registered for subprocess tests.

``python tests/support/tiny_data.py train --source tiny-fonts --target tiny-digits ...`` runs the
real command line (a fresh process, as a user would) on data that trains in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dann_serve import data
from dann_serve.data import Domain, Split

SOURCE, TARGET = "tiny-fonts", "tiny-digits"


def tiny_source() -> Domain:
    from dann_serve.data.fonts import generate

    return Domain(SOURCE, train=generate(256, seed=10), test=generate(100, seed=11))


def tiny_target() -> Domain:
    from dann_serve.data.digits import load_digits

    digits = load_digits()
    return Domain(
        TARGET,
        train=Split(digits.train.images[:256], digits.train.labels[:256]),
        test=Split(digits.test.images[:100], digits.test.labels[:100]),
    )


def start_cli(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``dann-serve *args`` with the tiny domains registered, as a child process whose
    output goes to ``log``; ``env``: variables added to this process's environment."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, __file__, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        )


if __name__ == "__main__":
    source, target = tiny_source(), tiny_target()
    data.LOADERS[SOURCE] = lambda _dir: source
    data.LOADERS[TARGET] = lambda _dir: target
    from dann_serve.cli import main

    main(sys.argv[1:], prog_name="dann-serve")

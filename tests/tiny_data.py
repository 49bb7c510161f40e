"""The tests' tiny domains, and ``dann-serve`` with them registered for subprocess tests.

``python tests/tiny_data.py train --source tiny-fonts --target tiny-digits ...`` runs the
real command line (a fresh process, as a user would) on data that trains in seconds.
"""

from __future__ import annotations

import sys

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


if __name__ == "__main__":
    source, target = tiny_source(), tiny_target()
    data.LOADERS[SOURCE] = lambda _dir: source
    data.LOADERS[TARGET] = lambda _dir: target
    from dann_serve.cli import main

    main(sys.argv[1:], prog_name="dann-serve")

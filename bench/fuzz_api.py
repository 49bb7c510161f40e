"""Fuzz ``dann-serve serve``'s REST API from its own description with schemathesis.

Starts the server on free ports over a copy of the model directory (label ``stable``
on the newest version of ``dann``, as the dictionaries of ``schemathesis.toml`` name
it), runs ``st run`` on its ``/v1/openapi.json`` with the project's
``schemathesis.toml`` (every phase: the description's examples, its boundaries, random
requests, sequences) and prints schemathesis's own report and summary. It fails when
schemathesis finds a 5xx (classify's and regress's documented 501 aside) or an answer
the description does not foresee, or when the server logged a traceback meanwhile.

    python -m bench.fuzz_api [--model-dir models] [--examples 100] [--seed 1]
        [--json bench/results/fuzz_api.json]

Without --model-dir it trains and exports a tiny model into a temporary directory
first (about a minute). The test suite runs the same command with fewer examples
(tests/serving/test_openapi.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench._common import ROOT, Result, argument_parser, newest_version, tiny_export

CONFIG = ROOT / "schemathesis.toml"
OPENAPI_PATH = "/v1/openapi.json"  # dann_serve.serving.openapi's; not imported: no TensorFlow here
LABEL = "stable"


def schemathesis_command(rest_url: str, examples: int, seed: int) -> list[str]:
    """``st run`` on the server at ``rest_url`` with the project's configuration,
    ``examples`` per operation and phase, reproducible by ``seed``, storing nothing."""
    return [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "--no-color"),
        *("run", rest_url + OPENAPI_PATH, "--url", rest_url),
        *("--max-examples", str(examples), "--seed", str(seed)),
        *("--generation-database", "none"),
    ]


def served_copy(model_dir: Path, workdir: Path) -> Path:
    """A copy of ``model_dir`` with label ``stable`` on dann's newest version."""
    from dann_serve.serving.model_config import promote

    copy = workdir / "served"
    shutil.copytree(model_dir, copy)
    promote(copy, "dann", int(newest_version(copy).name), LABEL)
    return copy


def summary(output: str) -> dict:
    """The figures of schemathesis's summary: test cases generated, passed, failed."""
    found = re.search(r"Test cases:\s*\n\s*(\d+) generated, (.*)", output)
    if not found:
        return {"generated": None, "outcome": None}
    return {"generated": int(found[1]), "outcome": found[2].strip()}


def fuzz(model_dir: Path, workdir: Path, examples: int, seed: int) -> dict:
    """Serve a copy of ``model_dir``, fuzz it, and return the figures (output printed)."""
    from harness.server_process import LocalServer

    server = LocalServer(served_copy(model_dir, workdir), workdir / "serve.log").wait_ready()
    started = time.perf_counter()
    try:
        run = subprocess.run(
            schemathesis_command(server.rest_url, examples, seed),
            cwd=workdir,  # schemathesis writes nothing, but not into the checkout either
            capture_output=True,
            text=True,
        )
    finally:
        server.stop()
    seconds = time.perf_counter() - started
    print(run.stdout + run.stderr, flush=True)
    tracebacks = server.log().count("Traceback")
    print(
        f"schemathesis: exit {run.returncode}, {seconds:.0f} s; server log: {tracebacks} tracebacks"
    )
    return {
        "examples_per_operation": examples,
        "seed": seed,
        "exit_code": run.returncode,
        "seconds": round(seconds, 1),
        "server_tracebacks": tracebacks,
        **summary(run.stdout),
    }


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="exported models (default: a tiny export)")
    parser.add_argument("--examples", type=int, default=100, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="result file (default bench/results/)")
    args = parser.parse_args()
    result = Result("fuzz_api", args.json)
    with tempfile.TemporaryDirectory(prefix="fuzz-api-") as scratch:
        model_dir = args.model_dir or tiny_export(Path(scratch))
        figures = fuzz(model_dir, Path(scratch), args.examples, args.seed)
    result.write(figures)
    if figures["exit_code"] != 0 or figures["server_tracebacks"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

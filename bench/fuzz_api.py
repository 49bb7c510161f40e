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

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench._common import ROOT, Result, argument_parser, newest_version, tiny_export
from dann_client.contract import OPENAPI_PATH

CONFIG = ROOT / "schemathesis.toml"
LABEL = "stable"


def schemathesis_command(rest_url: str, workdir: Path, examples: int, seed: int) -> list[str]:
    """``st run`` on the server at ``rest_url`` with the project's configuration,
    ``examples`` per operation and phase, reproducible by ``seed``, storing nothing.

    The description is fetched into ``workdir`` first and given as a file: loaded from
    its URL, schemathesis leaves out the operation that serves it."""
    description = workdir / "openapi.json"
    with urllib.request.urlopen(rest_url + OPENAPI_PATH, timeout=30) as answer:
        description.write_bytes(answer.read())
    return [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "--no-color"),
        *("run", str(description), "--url", rest_url),
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


def cases_by_operation(events: Path) -> dict[str, dict[str, int]]:
    """Per operation, the requests each phase sent (positive and negative ones alike),
    read from schemathesis's event log: the examples each route got, seen rather than
    assumed from --max-examples."""
    counts: dict[str, dict[str, int]] = {}
    for line in events.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        # a scenario that ended before sending anything has no cases recorded
        recorder = (finished or {}).get("recorder") or {}
        if "cases" not in recorder:
            continue
        phases = counts.setdefault(recorder["label"], {})
        phases[finished["phase"]] = phases.get(finished["phase"], 0) + len(recorder["cases"])
    return dict(sorted(counts.items()))


def report_figures(report: Path, events: Path) -> dict:
    """The test cases generated and failed (schemathesis's JSON report), and the cases
    of each operation."""
    totals = json.loads(report.read_text())["test_cases"]
    return {
        "generated": totals["generated"],
        "with_failures": totals["with_failures"],
        "cases_by_operation": cases_by_operation(events),
    }


def fuzz(model_dir: Path, workdir: Path, examples: int, seed: int) -> dict:
    """Serve a copy of ``model_dir``, fuzz it, and return the figures (output printed)."""
    from harness.server_process import LocalServer

    server = LocalServer(served_copy(model_dir, workdir), workdir / "serve.log").wait_ready()
    report, events = workdir / "report.json", workdir / "events.ndjson"
    command = schemathesis_command(server.rest_url, workdir, examples, seed)
    command += ["--report", "json,ndjson", "--report-json-path", str(report)]
    command += ["--report-ndjson-path", str(events)]
    started = time.perf_counter()
    try:
        # in the scratch folder: whatever schemathesis writes stays out of the checkout
        run = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    finally:
        server.stop()
    seconds = time.perf_counter() - started
    print(run.stdout + run.stderr, flush=True)
    figures = report_figures(report, events)
    print("requests per operation and phase:")
    for operation, phases in figures["cases_by_operation"].items():
        print(f"  {operation:52} " + ", ".join(f"{k} {v}" for k, v in phases.items()))
    tracebacks = server.log().count("Traceback")
    print(f"schemathesis: exit {run.returncode}, {seconds:.0f} s; server: {tracebacks} tracebacks")
    return {
        "examples_per_operation": examples,
        "seed": seed,
        "exit_code": run.returncode,
        "seconds": round(seconds, 1),
        "server_tracebacks": tracebacks,
        **figures,
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

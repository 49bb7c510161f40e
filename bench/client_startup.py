"""How fast does ``dann-client --help`` answer? (issue 5: median at most 0.5 s)

Prints the median wall time of ``dann-client --help`` next to that of a bare
``python -c pass`` (the floor any Python command pays), over N runs each,
and their ratio. Run with the interpreter of the environment to measure:

    .venv/bin/python bench/client_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_SECONDS = 0.5


def median_wall_time(command: list[str], runs: int) -> float:
    """Median seconds from start to exit; one warm-up run first fills the OS caches."""
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def client_command() -> list[str]:
    """The installed console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("dann-client")
    if not script.exists() and (found := shutil.which("dann-client")):
        script = Path(found)
    if script.exists():
        return [str(script), "--help"]
    return [sys.executable, "-m", "dann_client.cli", "--help"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command")
    args = parser.parse_args()

    command = client_command()
    baseline = median_wall_time([sys.executable, "-c", "pass"], args.runs)
    client = median_wall_time(command, args.runs)
    print(f"runs per command:        {args.runs}")
    print(f"python -c pass:          {baseline * 1000:7.1f} ms (median)")
    print(f"dann-client --help:      {client * 1000:7.1f} ms (median)")
    print(f"ratio:                   {client / baseline:7.2f}x")
    verdict = "meets" if client <= GOAL_SECONDS else "MISSES"
    print(f"goal <= {GOAL_SECONDS:.1f} s:           {verdict}")
    return 0 if client <= GOAL_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())

"""How fast does ``dann-client`` start? (the goal: ``--help`` median at most 0.5 s)

Prints the median wall time of ``dann-client --help`` next to that of a bare
``python -c pass`` (the floor any Python command pays), over N runs each, and their
ratio. With ``--model-dir`` it also times a cold start to the first answer: a fresh
``dann-client predict one.png`` against a running ``dann-serve serve``, beside a fresh
process running TensorFlow Serving's documented client (``documented_client.baseline``:
tensorflow-serving-api stubs, ``tf.make_tensor_proto``) on the same image; the
commands take turns. Run with the interpreter of the environment to measure:

    .venv/bin/python -m bench.client_startup [--runs 20] [--model-dir DIR]
        [--predict-runs 5] [--json bench/results/client_startup.json]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import ROOT, Result, argument_parser, client_command, median

GOAL_SECONDS = 0.5
# A fresh process doing what TensorFlow Serving's documentation shows, on one image. It
# imports bench.documented_client from its working directory, the checkout (ROOT).
DOCUMENTED_CLIENT = (
    "import sys; from pathlib import Path; from bench.documented_client import baseline; "
    "baseline(sys.argv[1], [Path(sys.argv[2])])()"
)


def wall_times(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Seconds from start to exit of each command, ``runs`` times, taking turns.

    One untimed run of each first fills the OS caches. Each runs in the checkout (ROOT),
    where ``python -c`` can import ``bench``.
    """
    for command in commands.values():
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    return times


def predict_cold_start(model_dir: Path, runs: int) -> dict[str, list[float]]:
    """Fresh-process time to one answer: dann-client vs the documented TF Serving client."""
    from PIL import Image

    from harness.server_process import LocalServer

    with tempfile.TemporaryDirectory(prefix="client-startup-") as scratch:
        image = Path(scratch) / "digit.png"
        Image.new("L", (28, 28), 0).save(image)
        server = LocalServer(model_dir, Path(scratch) / "serve.log").wait_ready()
        try:
            address = server.grpc_address
            return wall_times(
                {
                    "dann-client predict": [
                        *client_command(),
                        "predict",
                        str(image),
                        "--server",
                        address,
                    ],
                    "documented client": [
                        sys.executable,
                        "-c",
                        DOCUMENTED_CLIENT,
                        address,
                        str(image),
                    ],
                },
                runs,
            )
        finally:
            server.stop()


def main() -> int:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="also time a cold start to the first answer against this model",
    )
    parser.add_argument(
        "--predict-runs", type=int, default=5, help="timed runs of each predicting command"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where the figures go (default bench/results/client_startup.json)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if the goal is missed")
    args = parser.parse_args()
    result = Result("client_startup", args.json)

    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "dann-client --help": [*client_command(), "--help"],
    }
    times = wall_times(commands, args.runs)
    if args.model_dir is not None:
        times |= predict_cold_start(args.model_dir, args.predict_runs)
    medians = {name: median(values) for name, values in times.items()}
    baseline, client = medians["python -c pass"], medians["dann-client --help"]
    print(f"runs per command:        {args.runs}")
    print(f"python -c pass:          {baseline * 1000:7.1f} ms (median)")
    print(f"dann-client --help:      {client * 1000:7.1f} ms (median)")
    print(f"ratio:                   {client / baseline:7.2f}x")
    met = client <= GOAL_SECONDS
    print(f"goal <= {GOAL_SECONDS:.1f} s:           {'meets' if met else 'MISSES'}")
    figures = {
        "runs": args.runs,
        "seconds": {name: {"median": medians[name], "runs": times[name]} for name in times},
        "help_over_python": client / baseline,
        "goal_seconds": GOAL_SECONDS,
        "goal_met": met,
    }
    if args.model_dir is not None:
        ours, documented = medians["dann-client predict"], medians["documented client"]
        print(
            f"cold start to one answer ({args.predict_runs} runs each): dann-client predict "
            f"{ours:.2f} s, documented TF Serving client {documented:.2f} s "
            f"({documented / ours:.1f}x longer)"
        )
        figures["predict_runs"] = args.predict_runs
        figures["documented_over_client_predict"] = documented / ours
    result.write(figures)
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to accuracy, the figure a user waits for: on ``fonts -> digits``, the seconds of
training until the target test accuracy reaches ADAPT's final accuracy, ours against
ADAPT's ``adapt.feature_based.DANN`` (the goal: ours at least 3x faster, median of the
rounds).

Each round (seed = round number) runs two contenders of ``bench/train_contenders.py``,
each in its own process, on the same network, pair, batch, optimiser and schedules as
``bench/train_vs_adapt.py``, both evaluating the target test split every
``--eval-every`` steps and at the last:

1. ADAPT trains its ``--steps`` steps; its accuracy after the last one is the round's
   threshold. Its time to the threshold is the first evaluation that reached its own
   final accuracy (an earlier one may already have); its whole training time is
   reported beside it.
2. Ours (the averaged weights, as the CLI reports and exports them) trains on the same
   schedule of ``--steps`` steps and stops at the first evaluation that reaches the
   threshold; if none does, the round says so and has no ratio.

Seconds count from the model's construction (data in memory, libraries imported) to
that evaluation, building and tracing included, the evaluations' own time left out.
The ratio is ADAPT's seconds to its first crossing over ours, per round; the headline
is its median over the rounds. ADAPT runs first in every round (its result is ours'
threshold), so the contenders cannot take turns; the load average is printed before
and after and recorded with each round.

    python -m bench.time_to_accuracy [--steps 1000] [--rounds 3] [--eval-every 20]
        [--ours ours] [--adapt adapt] [--json bench/results/time_to_accuracy.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench._common import Result, argument_parser, median
from bench.train_contenders import CONTENDERS, reached
from bench.train_vs_adapt import run_child, save_pair

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOAL = 3.0  # ours at least 3x faster than ADAPT to ADAPT's final accuracy


def first_crossing(curve: list, threshold: float) -> dict | None:
    """The first ``(seconds, step, accuracy)`` point at or above ``threshold``; None
    when the curve never gets there."""
    for seconds, step, accuracy in curve:
        if reached(accuracy, threshold):
            return {"seconds": seconds, "step": step, "accuracy": accuracy}
    return None


def round_figures(adapt: dict, ours: dict) -> dict:
    """One round: ADAPT's final accuracy as the threshold, each contender's first
    crossing of it, and ADAPT's seconds over ours (None: ours never reached it).

    Where ADAPT's first evaluation already reached its final accuracy (its run ended no
    better than it began: the adversarial game can collapse to chance), the round times
    start-up and a few steps, not learning; it is flagged, not dropped."""
    threshold = adapt["target_accuracy"]
    adapt_cross = first_crossing(adapt["curve"], threshold)
    ours_cross = first_crossing(ours["curve"], threshold)
    return {
        "threshold": threshold,
        "adapt_first_crossing": adapt_cross,
        "adapt_training_seconds": adapt["training_seconds"],
        "threshold_at_first_evaluation": adapt_cross["step"] == adapt["curve"][0][1],
        "ours_crossing": ours_cross,
        "ours_steps_run": ours["steps_run"],
        "ours_training_seconds": ours["training_seconds"],
        "ratio": adapt_cross["seconds"] / ours_cross["seconds"] if ours_cross else None,
        "ratio_to_full_training": (
            adapt["training_seconds"] / ours_cross["seconds"] if ours_cross else None
        ),
        # what no learning speed can win back: building, tracing and the first step
        "start_up_seconds": {
            "adapt": adapt["first_step_seconds"],
            "ours": ours["first_step_seconds"],
        },
    }


def median_or_not_reached(values: list[float | None], missing_sorts_as: float) -> float | None:
    """The median, a round where ours never reached the threshold (None) sorting as
    ``missing_sorts_as`` (the worst end: -inf for a ratio, +inf for seconds); None when
    the median falls on such a round."""
    ordered = sorted(values, key=lambda v: missing_sorts_as if v is None else v)
    middle = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    return None if None in middle else statistics.mean(middle)


def summarise(rounds: list[dict]) -> dict:
    """Medians over the rounds, and the goal against the median ratio."""
    low, high = float("-inf"), float("inf")
    ratio = median_or_not_reached([r["ratio"] for r in rounds], low)
    ours_seconds = [r["ours_crossing"]["seconds"] if r["ours_crossing"] else None for r in rounds]
    return {
        "threshold": median(r["threshold"] for r in rounds),
        "adapt_seconds_to_threshold": median(r["adapt_first_crossing"]["seconds"] for r in rounds),
        "adapt_training_seconds": median(r["adapt_training_seconds"] for r in rounds),
        "ours_seconds_to_threshold": median_or_not_reached(ours_seconds, high),
        "ours_reached": sum(s is not None for s in ours_seconds),
        "ratio": ratio,
        "ratio_to_full_training": median_or_not_reached(
            [r["ratio_to_full_training"] for r in rounds], low
        ),
        "start_up_seconds": {
            side: median(r["start_up_seconds"][side] for r in rounds) for side in ("adapt", "ours")
        },
        "goal": GOAL,
        "goal_met": ratio is not None and ratio >= GOAL,
    }


def load() -> list[float]:
    """The load average (1, 5, 15 min): every figure here is read against it."""
    return [round(x, 2) for x in os.getloadavg()]


def describe(row: dict) -> str:
    """One round in a line, as it is printed when it ends."""
    a, o = row["adapt_first_crossing"], row["ours_crossing"]
    text = (
        f"ADAPT {row['threshold']:.3f} after {row['adapt_steps']} steps, "
        f"{row['adapt_training_seconds']:.1f} s (first reached at step {a['step']}, "
        f"{a['seconds']:.1f} s, start-up {row['start_up_seconds']['adapt']:.1f} s); "
    )
    if o is None:
        text += f"ours did NOT reach it in {row['ours_steps_run']} steps"
    else:
        text += (
            f"ours at step {o['step']}, {o['seconds']:.1f} s "
            f"(start-up {row['start_up_seconds']['ours']:.1f} s): {row['ratio']:.2f}x"
        )
    if row["threshold_at_first_evaluation"]:
        text += " (ADAPT ended no better than its first evaluation: start-up, not learning)"
    return text


def run_round(seed: int, data: Path, scratch: Path, args: argparse.Namespace) -> dict:
    """ADAPT's full run, then ours up to ADAPT's final accuracy."""
    options = ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    options += ["--eval-every", str(args.eval_every)]
    before = load()
    adapt = run_child(args.adapt, data, seed, scratch / f"adapt-{seed}.json", options)
    options += ["--stop-at", repr(adapt["target_accuracy"])]
    ours = run_child(args.ours, data, seed, scratch / f"ours-{seed}.json", options)
    return {
        "seed": seed,
        "load_before": before,
        "load_after": load(),
        "adapt_steps": adapt["steps_run"],
        **round_figures(adapt, ours),
        "runs": {"adapt": adapt, "ours": ours},
    }


def shown(value: float | None, unit: str) -> str:
    """A figure of ours with its unit, or what it is when ours never got there."""
    return "not reached" if value is None else f"{value:.2f}{unit}"


def report(summary: dict, args: argparse.Namespace, loads: tuple[list, list]) -> None:
    s = summary
    print(
        f"\nfonts -> digits, ADAPT {args.steps} steps, evaluation every {args.eval_every}, "
        f"medians of {args.rounds} rounds (load average {loads[0]} before, {loads[1]} after):\n"
        f"  threshold (ADAPT's final target accuracy) {s['threshold']:.3f}\n"
        f"  ADAPT to its final accuracy {s['adapt_seconds_to_threshold']:.1f} s "
        f"(whole training {s['adapt_training_seconds']:.1f} s)\n"
        f"  start-up to the end of the first step: ADAPT {s['start_up_seconds']['adapt']:.1f} s, "
        f"ours {s['start_up_seconds']['ours']:.1f} s\n"
        f"  ours to the same accuracy {shown(s['ours_seconds_to_threshold'], ' s')} "
        f"(reached in {s['ours_reached']} of {args.rounds} rounds)\n"
        f"  ADAPT / ours {shown(s['ratio'], 'x')} (per-round median; against ADAPT's whole "
        f"training {shown(s['ratio_to_full_training'], 'x')}): goal (>= {GOAL}x) "
        f"{'met' if s['goal_met'] else 'NOT met'}"
    )


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="ADAPT's steps (ours' schedule)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128, help="source + target images")
    parser.add_argument("--eval-every", type=int, default=20, help="steps between evaluations")
    ours_names = [name for name in CONTENDERS if name.startswith("ours")]
    parser.add_argument("--ours", default="ours", choices=ours_names)
    adapt_names = [name for name in CONTENDERS if name.startswith("adapt")]
    parser.add_argument("--adapt", default="adapt", choices=adapt_names)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    for option in ("steps", "rounds", "batch_size", "eval_every"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")

    result = Result("time_to_accuracy", args.json)
    before = load()
    print(f"load average before: {before}", flush=True)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="time-to-accuracy-") as scratch:
        data = Path(scratch) / "pair.npz"
        sizes = save_pair(data)
        for seed in range(args.rounds):
            rounds.append(run_round(seed, data, Path(scratch), args))
            print(f"  round {seed + 1}: {describe(rounds[-1])}", flush=True)
    after = load()
    print(f"load average after: {after}")
    summary = summarise(rounds)
    report(summary, args, (before, after))
    result.write(
        {
            "pair": "fonts -> digits",
            "sizes": sizes,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "eval_every": args.eval_every,
            "rounds": args.rounds,
            "contenders": {"ours": CONTENDERS[args.ours][0], "adapt": CONTENDERS[args.adapt][0]},
            "load_before": before,
            "load_after": after,
            "summary": summary,
            "per_round": rounds,
        }
    )


if __name__ == "__main__":
    main()

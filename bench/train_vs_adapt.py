"""Our DANN against ADAPT's ``adapt.feature_based.DANN`` on the same network, data pair,
batch and number of steps (the goal: ours at float32 at least 1.1x ADAPT's source images
per second, at least its target accuracy).

Each contender trains a fresh model for ``--steps`` steps on ``fonts -> digits`` in its
own subprocess (``python -m bench.train_contenders``), then reports its target (and source)
test accuracy; the same run gives its speed: source images per second over the steps
after the first ``--warmup`` (which hold the tracing). ``--rounds`` rounds, seed =
round number, the contenders taking turns (order reversed every other round) so that
the load of this shared machine falls on all of them alike. Figures are medians over the rounds.

Contenders:

- ``ours``: ``dann_serve.training.step.Trainer`` with its defaults (the step ``dann-serve
  train`` runs, random shifts included, ``--precision auto``: bfloat16 arithmetic on a
  CPU with bfloat16 instructions), the averaged weights evaluated as the CLI reports
  and exports them;
- ``ours-float32``: the same with ``--precision float32``, ADAPT's arithmetic (the
  speed goal's contender);
- ``adapt``: ADAPT 0.4.5 on Keras 3 (what ``pip install adapt`` gives beside TF 2.21),
  fed OUR feature extractor and label head objects (same layers, same in-graph
  preprocessing, same initial weights for a seed);
- ``adapt-tf-keras``: ADAPT on legacy Keras 2 (``tf-keras`` 2.21 with
  ``TF_USE_LEGACY_KERAS=1``, set only in that subprocess), the API ADAPT was written
  for: the same layers rebuilt in tf-keras, weights copied, the preprocessing layers
  wrapped in ``Lambda`` around the very same functions.

Both ADAPT runs get our schedules (SGD with momentum 0.9 and the annealed learning
rate on all three of its optimisers; lambda rising as 2/(1+exp(-10 p)) - 1 through
ADAPT's own ``UpdateLambda`` callback) and half a batch of each domain per step,
so only the implementation differs. What ADAPT cannot take from us is listed in the
JSON (``differences``) and in docs/PERFORMANCE.md.

    python -m bench.train_vs_adapt [--steps 1000] [--rounds 3] [--batch-size 128]
        [--contenders ours adapt adapt-tf-keras] [--json bench/results/train_vs_adapt.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import ROOT, Result, argument_parser, bench_module, median
from bench.train_contenders import CONTENDERS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOAL_SPEED = 1.1  # ours >= 1.1x ADAPT's source images/s, at >= its accuracy
DIFFERENCES = [
    "ADAPT's discriminator ends in one sigmoid unit with binary cross-entropy (its train "
    "step requires it); ours ends in two logits with softmax cross-entropy. Its hidden "
    "layer (Dense 100, ReLU) starts from our weights; the output unit is drawn fresh.",
    "ADAPT runs the encoder twice per step (64 source, then 64 target images) and takes "
    "three gradient tapes (task, encoder, discriminator) with three optimisers; ours runs "
    "one forward pass over the 128 images and one tape through a gradient reversal layer.",
    "ADAPT takes float32 arrays (pixels / 255) and builds its own tf.data pipeline "
    "(shuffle buffer of the whole source set, refilled every epoch of 313 steps); ours "
    "keeps uint8 pixels and gathers shuffled indices.",
    "Ours runs with its defaults, which shift both domains' images randomly each step "
    "(augment=True); ADAPT has no augmentation of its own and gets none.",
    "Ours evaluates the moving average of the weights (what it reports and exports); "
    "ADAPT has no such option, its final weights are evaluated. Our raw final weights' "
    "accuracy is in the JSON too (target_accuracy_raw).",
    "In the tf-keras variant the three preprocessing layers (grayscale, dark background, "
    "per-image standardisation) are tf_keras Lambda layers around the same functions.",
]


# -- the parent: data once, contenders in turns, medians ---------------------------------


def save_pair(path: Path) -> dict:
    from dann_serve import data

    source, target = data.load("fonts"), data.load("digits")
    np.savez(
        path,
        xs=source.train.images,
        ys=source.train.labels,
        xs_test=source.test.images,
        ys_test=source.test.labels,
        xt=target.train.images,
        yt=target.train.labels,
        xt_test=target.test.images,
        yt_test=target.test.labels,
    )
    return {
        "source_train": len(source.train),
        "source_test": len(source.test),
        "target_train": len(target.train),
        "target_test": len(target.test),
    }


def run_child(name: str, data: Path, seed: int, out: Path, options: list[str]) -> dict:
    """One contender's run in its own process (``bench.train_contenders NAME``, with
    ``options`` such as ``--steps``), its figures and the process's wall seconds."""
    command = [*bench_module("train_contenders"), name, "--data", str(data)]
    command += ["--seed", str(seed), "--out", str(out), *options]
    env = {**os.environ, **CONTENDERS[name][1]}
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    figures = json.loads(out.read_text())
    figures["process_seconds"] = time.perf_counter() - started
    return figures


SUMMARISED = (
    "source_images_per_s",
    "source_images_per_cpu_s",
    "step_ms_median",
    "stall_seconds",
    "target_accuracy",
    "source_accuracy",
    "process_seconds",
)


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Medians per contender, and each of ours against each of ADAPT's."""
    contenders = {}
    for name, rows in runs.items():
        medians = {key: median(row[key] for row in rows) for key in SUMMARISED}
        if "target_accuracy_raw" in rows[0]:
            medians["target_accuracy_raw"] = median(r["target_accuracy_raw"] for r in rows)
        contenders[name] = {"label": CONTENDERS[name][0], "median": medians, "runs": rows}
    comparisons = []
    for mine in (name for name in runs if name.startswith("ours")):
        for theirs in (name for name in runs if name.startswith("adapt")):
            a, b = contenders[mine]["median"], contenders[theirs]["median"]
            paired = [
                x["source_images_per_s"] / y["source_images_per_s"]
                for x, y in zip(runs[mine], runs[theirs], strict=True)
            ]
            speed = a["source_images_per_s"] / b["source_images_per_s"]
            gain = a["target_accuracy"] - b["target_accuracy"]
            comparisons.append(
                {
                    "ours": mine,
                    "adapt": theirs,
                    "speed": speed,
                    "speed_paired_median": median(paired),
                    "speed_per_cpu_s": a["source_images_per_cpu_s"] / b["source_images_per_cpu_s"],
                    "target_accuracy_gain": gain,
                    "goal_met": speed >= GOAL_SPEED and gain >= 0,
                }
            )
    return {"contenders": contenders, "comparisons": comparisons, "goal_speed": GOAL_SPEED}


def report(summary: dict, args: argparse.Namespace) -> None:
    print(
        f"\nfonts -> digits, {args.steps} steps, batch {args.batch_size} "
        f"({args.batch_size // 2} source + {args.batch_size // 2} target), medians of "
        f"{args.rounds} rounds:"
    )
    print(
        f"  {'contender':<34} {'src img/s':>9} {'img/cpu-s':>9} {'step ms':>8} "
        f"{'target':>7} {'source':>7}"
    )
    for row in summary["contenders"].values():
        m = row["median"]
        print(
            f"  {row['label']:<34} {m['source_images_per_s']:9.0f} "
            f"{m['source_images_per_cpu_s']:9.0f} {m['step_ms_median']:8.1f} "
            f"{m['target_accuracy']:7.3f} {m['source_accuracy']:7.3f}"
        )
    for c in summary["comparisons"]:
        print(
            f"  {c['ours']} / {c['adapt']}: speed {c['speed']:.2f}x (paired median "
            f"{c['speed_paired_median']:.2f}x, per CPU-s {c['speed_per_cpu_s']:.2f}x), target "
            f"accuracy {100 * c['target_accuracy_gain']:+.1f} points: goal (>= "
            f"{GOAL_SPEED}x, >= its accuracy) {'met' if c['goal_met'] else 'NOT met'}"
        )


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128, help="source + target images")
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of the timing")
    parser.add_argument(
        "--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS)
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.steps <= args.warmup + 10:
        parser.error("--steps must exceed --warmup by more than 10")

    result = Result("train_vs_adapt", args.json)
    runs: dict[str, list[dict]] = {name: [] for name in args.contenders}
    with tempfile.TemporaryDirectory(prefix="train-vs-adapt-") as scratch:
        data = Path(scratch) / "pair.npz"
        sizes = save_pair(data)
        options = ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
        options += ["--warmup", str(args.warmup)]
        for seed in range(args.rounds):
            order = args.contenders if seed % 2 == 0 else args.contenders[::-1]
            for name in order:
                out = Path(scratch) / f"{name}-{seed}.json"
                row = run_child(name, data, seed, out, options)
                runs[name].append({"seed": seed, **row})
                print(
                    f"  round {seed + 1}: {name:<15} {row['source_images_per_s']:7.0f} "
                    f"source img/s, target accuracy {row['target_accuracy']:.3f}, "
                    f"{row['process_seconds']:.0f} s",
                    flush=True,
                )
    summary = summarise(runs)
    report(summary, args)
    result.write(
        {
            "pair": "fonts -> digits",
            "sizes": sizes,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "source_per_step": args.batch_size // 2,
            "warmup_steps": args.warmup,
            "rounds": args.rounds,
            "differences": DIFFERENCES,
            **summary,
        }
    )


if __name__ == "__main__":
    main()

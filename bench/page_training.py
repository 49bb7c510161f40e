"""The training blocks of docs/PERFORMANCE.md: ours against ADAPT (``train_vs_adapt``,
and the seconds to ADAPT's final accuracy, ``time_to_accuracy``) and the step per
architecture, precision and replica count (``train_throughput``)."""

from __future__ import annotations

from bench.page_format import Results, missing, num, pct, ratio, table


def adapt_block(results: Results) -> str:
    f = results.figures("train_vs_adapt")
    if f is None:
        return missing("train_vs_adapt")
    rows = []
    ours = f["contenders"].get("ours", {}).get("median")
    for c in f["contenders"].values():
        m = c["median"]
        speed = ratio(m["source_images_per_s"] / ours["source_images_per_s"]) if ours else ""
        accuracies = ", ".join(f"{r['target_accuracy']:.3f}" for r in c["runs"])
        rows.append(
            [
                c["label"],
                num(m["source_images_per_s"]),
                speed,
                num(m["source_images_per_cpu_s"]),
                num(m["step_ms_median"], 1),
                num(m["stall_seconds"], 1),
                num(m["process_seconds"]),
                f"{m['target_accuracy']:.3f} ({accuracies})",
                f"{m['source_accuracy']:.3f}",
            ]
        )
    text = (
        f"{f['pair']}, {f['steps']} steps of {f['batch_size']} images "
        f"({f['source_per_step']} source + {f['source_per_step']} target), "
        f"medians of {f['rounds']} rounds (seeds 0..{f['rounds'] - 1}, contenders taking "
        f"turns); speed over the steps after the first {f['warmup_steps']}.\n\n"
    )
    header = [
        "contender",
        "source img/s",
        "vs ours",
        "source img per CPU-s",
        "step ms (median)",
        "stalls s",
        "process s",
        "target accuracy (per seed)",
        "source acc.",
    ]
    text += table(header, rows)
    if ours and "target_accuracy_raw" in ours:
        text += (
            f"\nOurs without weight averaging (raw final weights): target accuracy "
            f"{ours['target_accuracy_raw']:.3f} (median).\n"
        )
    lines = []
    for c in f["comparisons"]:
        lines.append(
            f"- {f['contenders'][c['ours']]['label']} vs {f['contenders'][c['adapt']]['label']}: "
            f"{ratio(c['speed'])} the source images/s (per-round paired median "
            f"{ratio(c['speed_paired_median'])}; per CPU-second "
            f"{ratio(c['speed_per_cpu_s'])}), target accuracy "
            f"{100 * c['target_accuracy_gain']:+.1f} points: goal "
            f"(>= {f.get('goal_speed', 1.5)}x and >= its accuracy) "
            f"**{'met' if c['goal_met'] else 'not met'}**"
        )
    return text + "\n" + "\n".join(lines) + "\n"


def train_block(results: Results) -> str:
    f = results.figures("train_throughput")
    if f is None:
        return missing("train_throughput")
    measured = {arch: r for arch, r in f["results"].items() if "ratio_to_bare" in r}
    rows = [
        [
            arch,
            num(r["source_images_per_s"]),
            num(r["bare_step_source_images_per_s"]),
            ratio(r["ratio_to_bare"]),
            num(r["source_images_per_cpu_s"]),
            str(r["steps"]),
        ]
        for arch, r in measured.items()
    ]
    text = (
        f"Batch {f['batch_size']} ({f['source_per_step']} source images per step), "
        f"random pixels, medians of {f['repeats']} repeats taking turns.\n\n"
    )
    header = [
        "arch",
        "DANN step, source img/s",
        "bare step, source img/s",
        "DANN / bare",
        "DANN step, source img per CPU-s",
        "steps per repeat",
    ]
    text += table(header, rows)
    text += "\nWhere a step's CPU time goes (ms per step; differences of the variants above):\n\n"
    text += _cpu_parts_table(measured)
    return text + _precision_table(f["results"]) + _replica_table(f.get("replicas"))


def _cpu_parts_table(measured: dict) -> str:
    parts = list(next(iter(measured.values()))["cpu_ms_parts"])
    rows = []
    for arch, r in measured.items():
        total = r["cpu_ms_per_step"]["ours"]
        rows.append(
            [arch]
            + [
                f"{r['cpu_ms_parts'][k]:.1f} ({pct(r['cpu_ms_parts'][k] / total, 0)})"
                for k in parts
            ]
            + [f"{total:.1f}"]
        )
    return table(["arch", *parts, "whole step"], rows)


def _precision_table(by_arch: dict) -> str:
    """The DANN step under each --precision, against float32 in the same repeats."""
    rows = [
        [arch, precision, num(speed), ratio(r["precision_speedup"][precision])]
        for arch, r in by_arch.items()
        if "precision_speedup" in r
        for precision, speed in r["precision_source_images_per_s"].items()
    ]
    if not rows:
        return ""
    header = ["arch", "--precision", "DANN step, source img/s", "vs float32"]
    return "\nThe DANN step per precision (taking turns with the rows above):\n\n" + table(
        header, rows, text_columns=2
    )


def _replica_table(row: dict | None) -> str:
    """mnist with no strategy and under MirroredStrategy over logical CPU devices."""
    if not row:
        return ""
    rows = [
        [name, num(speed), ratio(row["ratio_to_none"][name])]
        for name, speed in row["source_images_per_s"].items()
    ]
    return (
        f"\nReplicas: mnist, {row['steps']} steps per repeat, MirroredStrategy over logical "
        "CPU devices sharing this machine's cores (the strategy's own cost):\n\n"
        + table(["--distribute", "source img/s", "vs none"], rows)
    )


def time_to_accuracy_block(results: Results) -> str:
    f = results.figures("time_to_accuracy")
    if f is None:
        return missing("time_to_accuracy")
    rows = []
    for r in f["per_round"]:
        a, o = r["adapt_first_crossing"], r["ours_crossing"]
        reached = f"step {o['step']}, {num(o['seconds'], 1)} s" if o else "**not reached**"
        rows.append(
            [
                str(r["seed"]),
                num(r["load_before"][0], 1),
                f"{r['threshold']:.3f}" + (" (a)" if r["threshold_at_first_evaluation"] else ""),
                f"step {a['step']}, {num(a['seconds'], 1)} s",
                num(r["adapt_training_seconds"], 1),
                reached if o else f"{reached} in {r['ours_steps_run']} steps",
                _start_up(r),
                ratio(r["ratio"]) if o else "-",
            ]
        )
    s = f["summary"]
    header = [
        "seed",
        "load",
        "threshold",
        "ADAPT first reaches it",
        "ADAPT whole training s",
        "ours reaches it",
        "start-up s, ADAPT / ours",
        "ADAPT / ours",
    ]
    text = (
        f"{f['pair']}: {f['contenders']['adapt']} trains {f['steps']} steps of "
        f"{f['batch_size']} images and sets the threshold (its final target accuracy); "
        f"{f['contenders']['ours']} trains on the same {f['steps']}-step schedule until it "
        f"reaches it. Target test accuracy every {f['eval_every']} steps; seconds from the "
        f"model's construction, evaluation excluded. Load average (1, 5, 15 min) "
        f"{_loads(f['load_before'])} before, {_loads(f['load_after'])} after.\n\n"
    )
    text += table(header, rows)
    if any(r["threshold_at_first_evaluation"] for r in f["per_round"]):
        text += (
            "\n(a) ADAPT's first evaluation already reached its final accuracy: its run "
            "ended no better than it began, so this round times start-up, not learning.\n"
        )
    median_ratio = "not reached" if s["ratio"] is None else ratio(s["ratio"])
    ours = s["ours_seconds_to_threshold"]
    return text + (
        f"\nMedians of {f['rounds']} rounds: ADAPT {num(s['adapt_seconds_to_threshold'], 1)} s "
        f"to its final accuracy ({num(s['adapt_training_seconds'], 1)} s of training in all), "
        f"ours {'not reached' if ours is None else num(ours, 1) + ' s'} (reached in "
        f"{s['ours_reached']} of {f['rounds']} rounds): ADAPT / ours {median_ratio}; goal "
        f"(>= {s['goal']:.0f}x) **{'met' if s['goal_met'] else 'not met'}**.\n"
    )


def _start_up(row: dict) -> str:
    """Seconds to the end of each side's first step, where the round has them (rounds
    recorded before they were kept show a dash)."""
    seconds = row.get("start_up_seconds")
    if seconds is None:
        return "-"
    return f"{num(seconds['adapt'], 1)} / {num(seconds['ours'], 1)}"


def _loads(averages: list[float]) -> str:
    return " / ".join(f"{x:.1f}" for x in averages)

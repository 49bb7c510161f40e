"""Regenerate the tables of docs/PERFORMANCE.md from bench/results/*.json.

Only the text between ``<!-- bench:begin NAME -->`` and ``<!-- bench:end NAME -->``
is rewritten, by the generator of that NAME below; everything outside the markers
(the analysis) is kept as written. A benchmark whose JSON file is missing leaves a
one-line note in its block instead of stale figures.

    python bench/performance_page.py [--results bench/results] [--doc docs/PERFORMANCE.md]
        [--started EPOCH_SECONDS]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from dann_serve import files

from _common import RESULTS, ROOT, Result

DOC = ROOT / "docs" / "PERFORMANCE.md"
MAKE_BENCH = "make_bench"  # bench/results/make_bench.json: the wall time of the whole run
KIND = "bench"  # blocks <!-- bench:begin NAME --> ... <!-- bench:end NAME -->
VERSION_ORDER = (
    "python",
    "tensorflow",
    "keras",
    "onnxruntime",
    "grpcio",
    "numpy",
    "tf2onnx",
    "adapt",
    "tf_keras",
)


def table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    """A Markdown table: the first ``text_columns`` columns left-aligned, figures right."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"


class Results:
    """The JSON records of one results directory, by benchmark name."""

    def __init__(self, directory: Path) -> None:
        self.records = {
            p.stem: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))
        }

    def figures(self, name: str) -> dict | None:
        record = self.records.get(name)
        return record["figures"] if record else None


def missing(name: str) -> str:
    return f"_Not measured: `bench/results/{name}.json` is missing; run `make bench`._\n"


# -- one generator per block --------------------------------------------------------------


def machine_block(results: Results) -> str:
    if not results.records:
        return missing("*")
    first = next(iter(results.records.values()))
    host, versions = first["machine"], first["versions"]
    loads = [r["machine"]["load_average"][0] for r in results.records.values()]
    loads += [r["machine"].get("load_average_at_start", [0])[0] for r in results.records.values()]
    dates = sorted(r["date"] for r in results.records.values())
    lines = [
        f"- CPU: {host['cpu']} (vendor {host['vendor']}, family {host['cpu_family']}, "
        f"model {host['cpu_model']}), {host['cores']} cores at {host['mhz']:.0f} MHz "
        f"(as /proc/cpuinfo reports it), SIMD: {', '.join(host['simd'])}",
        f"- Memory: {host['memory_gib']} GiB; {host['system']}",
        "- Versions: " + ", ".join(f"{k} {versions[k]}" for k in VERSION_ORDER if k in versions),
        f"- Measured {dates[0]} to {dates[-1]} (UTC); 1-minute load average seen by the "
        f"benchmarks: {min(loads):.1f} to {max(loads):.1f} on {host['cores']} cores"
        + (" (the machine was shared: see below)" if max(loads) > 1.5 * host["cores"] else ""),
    ]
    mismatched = sorted(n for n, r in results.records.items() if r["versions"] != versions)
    if mismatched:
        lines.append(f"- Other versions in: {', '.join(mismatched)}")
    return "\n".join(lines) + "\n"


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
            f"{100 * c['target_accuracy_gain']:+.1f} points: acceptance "
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


SERVE_LABELS = {
    "in-process": "SavedModel in process",
    "onnxruntime": "ONNX Runtime",
    "grpc": "dann-serve serve, gRPC",
    "grpc, no model": "gRPC to a server without a model (transport and protobuf only)",
    "rest": "dann-serve serve, REST",
    "grpc uint8": "dann-serve serve, gRPC, uint8 pixels (predict_label_uint8)",
    "rest b64 png": "dann-serve serve, REST, base64 PNG files (predict_image)",
}


def share(row: dict, base: dict) -> float:
    """A path's images/s as a share of in process: the median of the rounds' ratios
    where the benchmark recorded it (since it paired rounds), else the ratio of medians."""
    return row.get("share", row["images_per_s"] / base["images_per_s"])


def serve_rows(paths: dict, base: dict, labels: dict | None = None) -> list[list[str]]:
    return [
        [
            (labels or {}).get(name, name),
            num(r["p50_ms"], 3),
            num(r["p99_ms"], 3),
            ratio(r["p50_ms"] / base["p50_ms"]),
            num(r["images_per_s"]),
            pct(share(r, base), 0),
        ]
        for name, r in paths.items()
    ]


SERVE_HEADER = [
    "path",
    "batch-1 p50 ms",
    "batch-1 p99 ms",
    "p50 vs SavedModel",
    "batch-256 img/s",
    "img/s vs SavedModel",
]


def serve_block(results: Results) -> str:
    f = results.figures("serve_latency")
    if f is None:
        return missing("serve_latency")
    base = f["paths"]["in-process"]
    goals = f["goals"]
    text = (
        f"Signature `{f['signature']}`, {f['requests']} batch-1 and {f['batches']} "
        f"batch-{f['big_batch']} requests per path in {f['rounds']} rounds taking turns; "
        f"model: {f['model']}.\n\n"
    )
    text += table(SERVE_HEADER, serve_rows(f["paths"], base, SERVE_LABELS))
    verdict = {True: "met", False: "not met"}
    paired = ", the median of the rounds' ratios" if "share" in f["paths"]["grpc"] else ""
    text += (
        f"\n- ONNX Runtime batch-1 p50 at most half of the SavedModel's (issue 8): "
        f"**{verdict[goals['onnx_p50_half']]}** "
        f"({pct(f['paths']['onnxruntime']['p50_ms'] / base['p50_ms'], 0)})\n"
        f"- gRPC batch-1 p50 within 1 ms of in process (issue 4): "
        f"{verdict[goals['grpc_p50_within_1ms']]} "
        f"(+{f['paths']['grpc']['p50_ms'] - base['p50_ms']:.3f} ms)\n"
        f"- gRPC batch-256 at least 80% of in process (issue 4): "
        f"{verdict[goals['grpc_throughput_80pct']]} "
        f"({pct(share(f['paths']['grpc'], base), 1)}{paired})\n"
    )
    return text


def onnx_block(results: Results) -> str:
    f = results.figures("serve_latency")
    if f is None:
        return missing("serve_latency")
    base = f["paths"]["in-process"]
    paths = {"ONNX Runtime, default session": f["paths"]["onnxruntime"], **f["ort_variants"]}
    text = table(SERVE_HEADER, serve_rows(paths, base))
    options = "; ".join(
        f"{name}: " + ", ".join(f"{k}={v}" for k, v in r["options"].items())
        for name, r in f["ort_variants"].items()
    )
    graph = f["onnx_graph"]
    kinds = ", ".join(f"{k} {v}" for k, v in graph["op_types"].items())
    return (
        text + f"\nOptions: {options}.\n\nExported graph (`onnx/{f['signature']}.onnx`, "
        f"opset {graph['opset']}): {graph['nodes']} nodes: {kinds}.\n"
    )


CLIENT_LABELS = {
    "dann-client": "dann-client predict DIR --json (CLI)",
    "dann-client float32": "the same CLI, float32 (an export before issue 18)",
    "dann-client as filed": "the CLI as issue 18 found it (float32)",
    "library": "dann_client.predict_files (in process)",
    "library float32": "the same library, float32",
    "baseline": "baseline: TF Serving docs' client, one image per request",
    "wire ceiling": "ceiling: our requests from memory",
    "wire ceiling float32": "ceiling: the same, float32",
    "model": "ceiling: SavedModel in process, no server",
}


STARTUP_LABELS = {
    "dann-client predict": "`dann-client predict one.png` (to its answer)",
    "documented client": "TF Serving's documented client, fresh process, one image",
}


def client_block(results: Results) -> str:
    parts = []
    f = results.figures("client_throughput")
    if f is None:
        parts.append(missing("client_throughput"))
    else:
        base = f["images_per_s"]["baseline"]["median"]
        rows = [
            [CLIENT_LABELS.get(name, name), num(r["median"]), ratio(r["median"] / base)]
            for name, r in f["images_per_s"].items()
        ]
        parts.append(
            f"End to end on {num(f['images'])} PNG files ({f['source']}; the "
            f"baseline times the first {num(f['baseline_images'])}), medians of "
            f"{f['repeats']} repeats taking turns.\n\n"
            + table(["path", "images/s", "vs baseline"], rows)
            + f"\nGoal of issue 5 (>= 10x the baseline and >= 2,000 images/s): "
            f"**{'met' if f['goal_met'] else 'not met'}** "
            f"({ratio(f['ratio_cli_to_baseline'])}).\n"
        )
        if f.get("ratio_to_filed_client"):
            parts.append(
                f"Goal of issue 18 (the CLI with {f['wire']} >= 1.5x the CLI as the issue "
                f"found it, `{f['filed_client']}`): "
                f"**{'met' if f['uint8_goal_met'] else 'not met'}** "
                f"({ratio(f['ratio_to_filed_client'])}; the wire alone, today's CLI with "
                f"float32: {ratio(f['ratio_uint8_to_float32'])}).\n"
            )
    s = results.figures("client_startup")
    if s is None:
        parts.append(missing("client_startup"))
    else:
        base = s["seconds"]["python -c pass"]["median"]
        rows = [
            [
                STARTUP_LABELS.get(name, f"`{name}`"),
                num(1000 * r["median"], 1),
                ratio(r["median"] / base),
                str(len(r["runs"])),
            ]
            for name, r in s["seconds"].items()
        ]
        text = (
            "Cold start (fresh process, wall time to exit; the predicting commands "
            "against a running `dann-serve serve`):\n\n"
            + table(["command", "median ms", "vs python -c pass", "runs"], rows)
            + f"\nGoal of issue 5 (`dann-client --help` <= {s['goal_seconds']} s): "
            f"**{'met' if s['goal_met'] else 'not met'}**."
        )
        if "documented_over_client_predict" in s:
            text += (
                f" To a first answer, the documented client's fresh process takes "
                f"{ratio(s['documented_over_client_predict'])} as long as "
                f"`dann-client predict`."
            )
        parts.append(text + "\n")
    return "\n".join(parts)


def limits_block(results: Results) -> str:
    f = results.figures("limits")
    if f is None:
        return missing("limits")
    rows = []
    for arch, r in f["flops"].items():
        macs = r["macs"]
        rows.append(
            [
                arch,
                num(macs["features"]),
                num(macs["label_head"]),
                num(macs["domain_head"]),
                num(r["predict_label"] / 1e6, 2),
                num(r["forward_both_heads"] / 1e6, 2),
                num(f["train_factor"] * 2 * r["forward_both_heads"] / 1e6, 1),
                "equal" if r["cross_check_equal"] else f"differs: {num(r['graph_conv_matmul'])}",
            ]
        )
    text = table(
        [
            "arch",
            "features MACs",
            "label head MACs",
            "domain head MACs",
            "inference MFLOP (predict_label)",
            "forward MFLOP (both heads)",
            "training MFLOP per source img",
            "TF graph conv+matmul",
        ],
        rows,
    )
    peak = f["peak"]
    text += (
        f"\nPeak fp32: **{num(peak['peak_flops'] / 1e9)} GFLOP/s** = {peak['derivation']}. "
        f"Check: one thread of TensorFlow's fp32 matmul (2048 x 2048) does "
        f"**{num(peak['matmul_per_core'] / 1e9)} GFLOP per CPU-second**, which at "
        f"{peak['flop_per_cycle_per_core']} FLOP/cycle needs at least "
        f"{peak['implied_ghz']:.2f} GHz.\n\n"
    )
    rows = [
        [
            r["what"],
            r["arch"],
            num(r["images_per_s"]) + f" {r['unit']}",
            num(r["flops"] / 1e9, 1),
            pct(r["fraction_of_peak"]),
            pct(r["fraction_of_matmul"]),
        ]
        for r in f["achieved"]
    ]
    header = ["measured", "arch", "speed", "GFLOP/s", "of peak", "of matmul rate"]
    return text + table(header, rows)


def walltime_block(results: Results) -> str:
    scripts = [r for name, r in results.records.items() if name != MAKE_BENCH]
    rows = [
        [f"`{r['command']}`", num(r["wall_seconds"])]
        for r in sorted(scripts, key=lambda r: r["date"])
    ]
    rows.append(["sum of the benchmarks", num(sum(r["wall_seconds"] for r in scripts))])
    if whole := results.figures(MAKE_BENCH):
        rows.append(["`make bench`, start to report (with the tiny export)", num(whole["seconds"])])
    return table(["script", "wall s"], rows)


GENERATORS: dict[str, Callable[[Results], str]] = {
    "machine": machine_block,
    "adapt": adapt_block,
    "train": train_block,
    "serve": serve_block,
    "onnx": onnx_block,
    "client": client_block,
    "limits": limits_block,
    "walltime": walltime_block,
}


def fill(doc: str, results: Results) -> str:
    """``doc`` with every generated block rewritten from ``results``."""
    for name in files.block_names(doc, KIND):
        if name not in GENERATORS:
            raise SystemExit(f"unknown block {name!r} (known: {', '.join(GENERATORS)})")
        try:
            doc = files.splice(doc, GENERATORS[name](results), *files.markers(KIND, name))
        except files.MarkerError as error:
            raise SystemExit(f"block {name!r}: {error}") from None
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument(
        "--started",
        type=float,
        default=None,
        help="epoch seconds when `make bench` started: records its wall time",
    )
    args = parser.parse_args()
    doc = files.read_document(args.doc)
    if doc is None:
        raise SystemExit(f"{args.doc}: no such file")
    found = set(files.block_names(doc, KIND))
    if not found:
        raise SystemExit(f"{args.doc}: no <!-- bench:begin NAME --> blocks")
    if args.started is not None:  # the whole `make bench`, kept for later regenerations
        Result(MAKE_BENCH, args.results / f"{MAKE_BENCH}.json").write(
            {"seconds": time.time() - args.started}
        )
    files.write_document(args.doc, fill(doc, Results(args.results)))
    print(f"regenerated {', '.join(sorted(found))} in {args.doc}")


if __name__ == "__main__":
    main()

"""Regenerate the tables of docs/PERFORMANCE.md from bench/results/*.json.

Only the text between ``<!-- bench:begin NAME -->`` and ``<!-- bench:end NAME -->``
is rewritten, by the generator of that NAME below; everything outside the markers
(the analysis) is kept as written. A benchmark whose JSON file is missing leaves a
one-line note in its block instead of stale figures.

    python -m bench.performance_page [--results bench/results] [--doc docs/PERFORMANCE.md]
        [--started EPOCH_SECONDS]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench._common import RESULTS, ROOT, Result, argument_parser
from bench.page_format import Results, missing, num, table
from bench.page_serving import client_block, limits_block, onnx_block, probe_block, serve_block
from bench.page_training import adapt_block, time_to_accuracy_block, train_block
from dann_serve import files

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


# -- the blocks of this module's own ---------------------------------------------------


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
    for other, names in _other_hosts(results, host).items():
        lines.append(f"- Measured on another host ({other}): {', '.join(names)}")
    return "\n".join(lines) + "\n"


def _host(machine: dict) -> str:
    """A host as the records tell hosts apart: the CPU the VM reports, and its kernel."""
    return f"CPU family {machine['cpu_family']}, model {machine['cpu_model']}; {machine['system']}"


def _other_hosts(results: Results, host: dict) -> dict[str, list[str]]:
    """The benchmarks measured elsewhere than ``host``, by host: a results directory
    filled over several sessions may span machines, whose figures do not compare."""
    others: dict[str, list[str]] = {}
    for name, record in results.records.items():
        if _host(record["machine"]) != _host(host):
            others.setdefault(_host(record["machine"]), []).append(name)
    return others


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
    "time_to_accuracy": time_to_accuracy_block,
    "train": train_block,
    "serve": serve_block,
    "onnx": onnx_block,
    "client": client_block,
    "limits": limits_block,
    "probe": probe_block,
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
    parser = argument_parser(__doc__.split("\n\n")[0])
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

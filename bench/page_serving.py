"""The serving blocks of docs/PERFORMANCE.md: latency and throughput per path
(``serve_latency``), ONNX Runtime's session options, the client end to end
(``client_throughput``, ``client_startup``), the server's limits (``limits``) and the
hostile-request probe (``probe``)."""

from __future__ import annotations

from bench.page_format import Results, missing, num, pct, ratio, table

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
        f"\n- ONNX Runtime batch-1 p50 at most half of the SavedModel's: "
        f"**{verdict[goals['onnx_p50_half']]}** "
        f"({pct(f['paths']['onnxruntime']['p50_ms'] / base['p50_ms'], 0)})\n"
        f"- gRPC batch-1 p50 within 1 ms of in process: "
        f"{verdict[goals['grpc_p50_within_1ms']]} "
        f"(+{f['paths']['grpc']['p50_ms'] - base['p50_ms']:.3f} ms)\n"
        f"- gRPC batch-256 at least 80% of in process: "
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
    "dann-client float32": "the same CLI, float32 (an export without the uint8 twin)",
    "dann-client as filed": "the float32-only CLI (before uint8 requests)",
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
            + f"\nGoal (>= 10x the baseline and >= 2,000 images/s): "
            f"**{'met' if f['goal_met'] else 'not met'}** "
            f"({ratio(f['ratio_cli_to_baseline'])}).\n"
        )
        if f.get("ratio_to_filed_client"):
            parts.append(
                f"Goal (the CLI with {f['wire']} >= 1.5x the float32-only CLI, "
                f"`{f['filed_client']}`): "
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
            + f"\nGoal (`dann-client --help` <= {s['goal_seconds']} s): "
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


def probe_block(results: Results) -> str:
    """The hostile-request probe's tally, and each case that did not pass, in its words."""
    f = results.figures("probe")
    if f is None:
        return missing("probe")
    text = (
        f"`python -m bench.probe`: **{f['summary']}**. Each case's line (what was sent, "
        "what came back, what was expected) is in `bench/results/probe.json`.\n"
    )
    rows = [
        [
            r["case"],
            "not runnable" if r["ok"] is None else "**failed**",
            r["sent"],
            r["got"].replace("|", "/"),
        ]
        for r in f["cases"]
        if not r["ok"]
    ]
    if rows:
        text += "\n" + table(["case", "result", "sent", "got"], rows, text_columns=4)
    return text

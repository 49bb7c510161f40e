"""The benchmark tooling: its own arithmetic (FLOP counts, the CPU peak, the report
generator), and the training benchmark run in miniature."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import _common, limits, performance_page

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

# By hand, from the layer shapes of dann_serve/model.py (grayscale input: 1 channel).
MNIST_MACS = {
    # conv 5x5x1 -> 28x28x32, pool -> 14x14x32, conv 5x5x32 -> 10x10x48
    "features": 28 * 28 * 32 * 25 * 1 + 10 * 10 * 48 * 25 * 32,  # 4,467,200
    "label_head": 1200 * 100 + 100 * 100 + 100 * 10,  # 131,000
    "domain_head": 1200 * 100 + 100 * 2,  # 120,200
}
SVHN_MACS = {
    # same-padded convs: 32x32x64 (from 1 channel), 16x16x64, 8x8x128
    "features": 32 * 32 * 64 * 25 + 16 * 16 * 64 * 25 * 64 + 8 * 8 * 128 * 25 * 64,
    "label_head": 8192 * 3072 + 3072 * 2048 + 2048 * 10,
    "domain_head": 8192 * 1024 + 1024 * 1024 + 1024 * 2,
}


def test_multiply_adds_of_both_architectures_equal_the_hand_count() -> None:
    assert limits.analytic_macs("mnist") == MNIST_MACS
    assert sum(MNIST_MACS.values()) == 4_718_400
    assert limits.analytic_macs("svhn") == SVHN_MACS


def test_tensorflow_graph_statistics_agree_with_the_count() -> None:
    by_op = limits.graph_flops("mnist")
    grayscale = 2 * 32 * 32 * 3  # rgb_to_grayscale is a [pixels, 3] x [3, 1] MatMul
    assert by_op["Conv2D"] == 2 * MNIST_MACS["features"]
    assert by_op["MatMul"] - grayscale == 2 * (MNIST_MACS["label_head"] + MNIST_MACS["domain_head"])


@pytest.mark.parametrize(
    ("host", "per_cycle"),
    [
        ({"vendor": "AuthenticAMD", "cpu_family": "25", "simd": ["avx2", "fma", "avx512f"]}, 32),
        ({"vendor": "GenuineIntel", "cpu_family": "6", "simd": ["avx2", "fma", "avx512f"]}, 64),
        ({"vendor": "AuthenticAMD", "cpu_family": "23", "simd": ["avx2", "fma"]}, 32),
        ({"vendor": "GenuineIntel", "cpu_family": "6", "simd": ["sse4_2"]}, 16),
    ],
)
def test_peak_flops_per_cycle_follows_the_simd_flags(host: dict, per_cycle: int) -> None:
    peak = limits.peak_flops({**host, "mhz": 2500.0, "cores": 2})
    assert peak["flop_per_cycle_per_core"] == per_cycle
    assert peak["peak_flops"] == pytest.approx(2 * 2.5e9 * per_cycle)


def test_cpuinfo_reads_the_first_processor() -> None:
    text = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fma avx2\n\nprocessor\t: 1\n"
    assert _common.cpuinfo(text) == {
        "processor": "0",
        "model name": "Test CPU",
        "flags": "fma avx2",
    }


def record(figures: dict) -> dict:
    return {
        "benchmark": "serve_latency",
        "date": "2026-01-01T00:00:00Z",
        "wall_seconds": 12.0,
        "command": "serve_latency.py",
        "machine": {
            "cpu": "Test CPU",
            "vendor": "v",
            "cpu_family": "1",
            "cpu_model": "2",
            "cores": 2,
            "mhz": 2000.0,
            "simd": ["avx2"],
            "memory_gib": 4.0,
            "system": "Linux",
            "load_average": [0.5, 0.5, 0.5],
        },
        "versions": {"python": "3.11.7", "tensorflow": "2.21.0"},
        "figures": figures,
    }


def test_report_fills_a_block_from_json_and_keeps_the_prose(tmp_path: Path) -> None:
    paths = {
        "in-process": {"p50_ms": 1.0, "p99_ms": 2.0, "images_per_s": 1000.0},
        "onnxruntime": {"p50_ms": 0.25, "p99_ms": 0.5, "images_per_s": 2000.0},
        "grpc": {"p50_ms": 1.5, "p99_ms": 3.0, "images_per_s": 800.0},
        "rest": {"p50_ms": 5.0, "p99_ms": 9.0, "images_per_s": 100.0},
    }
    figures = {
        "signature": "predict_label",
        "requests": 10,
        "batches": 2,
        "big_batch": 256,
        "rounds": 2,
        "model": "tiny export",
        "paths": paths,
        "ort_variants": {},
        "onnx_graph": {"nodes": 3, "opset": 17, "op_types": {"Conv": 2, "MatMul": 1}},
        "goals": {
            "grpc_p50_within_1ms": True,
            "grpc_throughput_80pct": True,
            "onnx_p50_half": True,
        },
    }
    (tmp_path / "serve_latency.json").write_text(json.dumps(record(figures)))
    doc = (
        "# Title\n\nHand-written analysis.\n\n<!-- bench:begin serve -->\nstale\n"
        "<!-- bench:end serve -->\n\nMore prose.\n<!-- bench:begin adapt -->\nold\n"
        "<!-- bench:end adapt -->\n"
    )
    filled = performance_page.fill(doc, performance_page.Results(tmp_path))
    assert filled.startswith("# Title\n\nHand-written analysis.\n\n<!-- bench:begin serve -->\n")
    assert "More prose." in filled and "stale" not in filled and "old" not in filled
    assert "| ONNX Runtime | 0.250 | 0.500 | 0.25x | 2,000 | 200% |" in filled
    assert "**met** (25%)" in filled
    assert "`bench/results/train_vs_adapt.json` is missing" in filled
    # regenerating is stable
    assert performance_page.fill(filled, performance_page.Results(tmp_path)) == filled


def test_the_probe_block_shows_the_tally_and_each_case_that_did_not_pass(tmp_path) -> None:
    cases = [
        {"case": "1a", "ok": True, "sent": "a smuggled GET", "got": "1 response"},
        {"case": "13", "ok": False, "sent": "64 stalled calls", "got": "FAILED | 7.2 s"},
        {"case": "23", "ok": None, "sent": "a locked directory", "got": "not runnable: root"},
    ]
    figures = {"summary": "1 of 2 as expected; failed: 13", "passed": 1, "cases": cases}
    (tmp_path / "probe.json").write_text(json.dumps(record(figures)))
    doc = "<!-- bench:begin probe -->\n<!-- bench:end probe -->\n"
    filled = performance_page.fill(doc, performance_page.Results(tmp_path))
    assert "**1 of 2 as expected; failed: 13**" in filled
    assert "| 13 | **failed** | 64 stalled calls | FAILED / 7.2 s |" in filled
    assert "| 23 | not runnable | a locked directory | not runnable: root |" in filled
    assert "smuggled" not in filled
    assert performance_page.fill(filled, performance_page.Results(tmp_path)) == filled
    missing = performance_page.fill(doc, performance_page.Results(tmp_path / "none"))
    assert "`bench/results/probe.json` is missing" in missing


@pytest.mark.slow
def test_train_throughput_times_every_row_and_the_page_shows_them(tmp_path: Path) -> None:
    """The script a GPU machine will run unchanged (``--distribute mirrored``), in
    miniature: the step against the bare step, each precision, and the replica row."""
    out = tmp_path / "results" / "train_throughput.json"
    command = [sys.executable, "-m", "bench.train_throughput", "--arch", "mnist"]
    command += ["--steps", "2", "--repeats", "1", "--batch-size", "16", "--json", str(out)]
    command += ["--distribute", "mirrored", "--replicas", "1", "2"]
    subprocess.run(command, cwd=ROOT, check=True)
    figures = json.loads(out.read_text())["figures"]
    mnist = figures["results"]["mnist"]
    assert mnist["replicas"] == 1 and figures["distribute"] == "mirrored"
    assert set(mnist["precision_speedup"]) == {"float32", "mixed_bfloat16"}
    assert mnist["ratio_to_bare"] > 0 and mnist["cpu_ms_parts"]["forward"] > 0
    assert set(figures["replicas"]["source_images_per_s"]) == {
        "none",
        "mirrored x1",
        "mirrored x2",
    }
    page = performance_page.train_block(performance_page.Results(out.parent))
    assert "mixed_bfloat16" in page and "mirrored x2" in page


def test_the_machine_block_names_the_benchmarks_measured_on_another_host(tmp_path) -> None:
    (tmp_path / "a_first.json").write_text(json.dumps(record({})))
    elsewhere = record({})
    elsewhere["machine"] |= {"cpu_family": "9", "system": "Linux other"}
    (tmp_path / "b_second.json").write_text(json.dumps(elsewhere))
    (tmp_path / "c_third.json").write_text(json.dumps(elsewhere))
    block = performance_page.machine_block(performance_page.Results(tmp_path))
    assert "family 1, model 2" in block
    assert block.splitlines()[-1] == (
        "- Measured on another host (CPU family 9, model 2; Linux other): b_second, c_third"
    )
    (tmp_path / "b_second.json").unlink()
    (tmp_path / "c_third.json").unlink()
    assert "another host" not in performance_page.machine_block(performance_page.Results(tmp_path))


def test_the_client_benchmarks_cpu_bound_is_what_the_shared_cores_can_do(monkeypatch) -> None:
    from bench import client_throughput

    monkeypatch.setattr(client_throughput.os, "cpu_count", lambda: 2)
    cpu = {"cli": {"client": [40e-6, 50e-6, 90e-6], "server": [30e-6, 30e-6, 30e-6]}}
    bound = client_throughput.cpu_bound(cpu, "cli")
    assert bound["client_cpu_us"] == pytest.approx(50.0)
    assert bound["server_cpu_us"] == pytest.approx(30.0)
    # 80 us of CPU per image on 2 cores: 25,000 images/s at best.
    assert bound["max_images_per_s"] == pytest.approx(25_000.0)


def test_process_cpu_seconds_reads_the_kernels_count_for_a_process() -> None:
    import os
    import time

    before, own = _common.process_cpu_seconds(os.getpid()), time.process_time()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    spent = _common.process_cpu_seconds(os.getpid()) - before
    # /proc counts in clock ticks (10 ms): within two ticks of the interpreter's count.
    assert spent == pytest.approx(time.process_time() - own, abs=0.03)


SCRIPTS = sorted(
    path.stem
    for path in BENCH.glob("*.py")
    if '__name__ == "__main__"' in path.read_text() and path.name != "_common.py"
)


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_runs_alone_as_the_readme_says(script: str) -> None:
    """``python -m bench.<script> --help`` from the checkout's root, in a fresh
    interpreter: the scripts, their sibling modules and the unpublished harness are
    imported as the packages ``bench`` and ``harness`` of the checkout, not installed."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{script}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:"), done.stdout[:200]


def curve(*points: tuple[float, int, float]) -> list:
    return [list(point) for point in points]


def test_time_to_accuracy_takes_the_first_evaluation_that_reaches_the_threshold() -> None:
    from bench.time_to_accuracy import first_crossing

    points = curve((2.0, 20, 0.41), (3.0, 40, 0.512), (4.0, 60, 0.49), (5.0, 80, 0.512))
    # ADAPT reached its own final accuracy (0.512) at step 40 already, then fell back
    assert first_crossing(points, 0.512) == {"seconds": 3.0, "step": 40, "accuracy": 0.512}
    assert first_crossing(points, 0.6) is None


def test_time_to_accuracy_round_ratio_is_adapts_first_crossing_over_ours() -> None:
    from bench.time_to_accuracy import round_figures

    adapt = {
        "curve": curve((5.0, 100, 0.45), (12.0, 600, 0.5), (20.0, 1000, 0.5)),
        "target_accuracy": 0.5,
        "training_seconds": 20.0,
        "first_step_seconds": 3.0,
    }
    ours = {
        "curve": curve((2.0, 100, 0.4), (4.0, 200, 0.52)),
        "steps_run": 200,
        "first_step_seconds": 1.0,
    }
    row = round_figures(adapt, {**ours, "training_seconds": 4.0})
    assert row["start_up_seconds"] == {"adapt": 3.0, "ours": 1.0}
    assert row["threshold"] == 0.5
    assert row["adapt_first_crossing"]["step"] == 600
    assert row["ours_crossing"]["step"] == 200
    assert row["ratio"] == pytest.approx(3.0)  # 12 s / 4 s, not ADAPT's whole 20 s
    assert row["ratio_to_full_training"] == pytest.approx(5.0)
    assert not row["threshold_at_first_evaluation"]
    never = {**ours, "curve": curve((2.0, 500, 0.4), (4.0, 1000, 0.49)), "steps_run": 1000}
    row = round_figures(adapt, {**never, "training_seconds": 4.0})
    assert row["ours_crossing"] is None and row["ratio"] is None
    # ADAPT collapsed to chance: its first evaluation already matched its final accuracy
    collapsed = {
        **adapt,
        "curve": curve((5.0, 100, 0.2), (20.0, 1000, 0.1)),
        "target_accuracy": 0.1,
    }
    row = round_figures(collapsed, {**ours, "training_seconds": 4.0})
    assert row["threshold_at_first_evaluation"] and row["ratio"] == pytest.approx(5.0 / 2.0)


def round_row(ratio: float | None, ours_seconds: float | None) -> dict:
    crossing = None if ours_seconds is None else {"seconds": ours_seconds}
    return {
        "threshold": 0.5,
        "adapt_first_crossing": {"seconds": 12.0},
        "adapt_training_seconds": 20.0,
        "threshold_at_first_evaluation": False,
        "ours_crossing": crossing,
        "ratio": ratio,
        "ratio_to_full_training": None if ratio is None else 2 * ratio,
        "start_up_seconds": {"adapt": 3.0, "ours": 1.0 if ratio is None else 12.0 / ratio / 4},
    }


def test_time_to_accuracy_medians_count_a_round_not_reached_as_the_slowest() -> None:
    from bench.time_to_accuracy import summarise

    s = summarise([round_row(4.0, 3.0), round_row(None, None), round_row(2.0, 6.0)])
    # not reached sorts below 2.0x: the median is the 2.0x round, and the goal is missed
    assert s["ratio"] == pytest.approx(2.0) and not s["goal_met"]
    assert s["ours_seconds_to_threshold"] == pytest.approx(6.0)
    assert s["ours_reached"] == 2 and s["adapt_seconds_to_threshold"] == pytest.approx(12.0)
    assert s["start_up_seconds"] == {"adapt": 3.0, "ours": 1.0}  # of 0.75, 1.0 and 1.5
    s = summarise([round_row(4.0, 3.0), round_row(None, None), round_row(None, None)])
    assert s["ratio"] is None and s["ours_seconds_to_threshold"] is None and not s["goal_met"]
    s = summarise([round_row(3.5, 3.0), round_row(5.0, 2.0), round_row(3.0, 4.0)])
    assert s["ratio"] == pytest.approx(3.5) and s["goal_met"]
    assert summarise([round_row(3.0, 3.0), round_row(5.0, 2.0)])["ratio"] == pytest.approx(4.0)


def test_time_to_accuracy_block_says_when_ours_never_reached_the_threshold(tmp_path) -> None:
    from bench.time_to_accuracy import summarise

    rounds = [
        {**round_row(3.0, 4.0), "seed": 0, "load_before": [2.5, 2.0, 1.5]},
        {**round_row(None, None), "seed": 1, "load_before": [2.5, 2.0, 1.5]},
    ]
    for row in rounds:
        row["adapt_first_crossing"] |= {"step": 600}
        row["ours_steps_run"] = 1000
    rounds[0]["ours_crossing"] |= {"step": 200}
    rounds[1]["threshold_at_first_evaluation"] = True
    figures = {
        "pair": "fonts -> digits",
        "steps": 1000,
        "batch_size": 128,
        "eval_every": 20,
        "rounds": 2,
        "contenders": {"ours": "ours", "adapt": "ADAPT"},
        "load_before": [2.5, 2.0, 1.5],
        "load_after": [2.75, 2.0, 1.5],
        "summary": summarise(rounds),
        "per_round": rounds,
    }
    del rounds[1]["start_up_seconds"]  # as rounds recorded before it was kept
    (tmp_path / "time_to_accuracy.json").write_text(json.dumps(record(figures)))
    block = performance_page.time_to_accuracy_block(performance_page.Results(tmp_path))
    assert (
        "| 0 | 2.5 | 0.500 | step 600, 12.0 s | 20.0 | step 200, 4.0 s | 3.0 / 1.0 | 3.00x |"
        in block
    )
    not_reached = "**not reached** in 1000 steps | - | - |"
    assert "| 1 | 2.5 | 0.500 (a) | step 600, 12.0 s | 20.0 | " + not_reached in block
    assert "(a) ADAPT's first evaluation already reached its final accuracy" in block
    assert "2.5 / 2.0 / 1.5 before, 2.8 / 2.0 / 1.5 after" in block
    assert "ADAPT / ours not reached; goal (>= 3x) **not met**" in block

"""dann-serve report: a results page from finished runs, read-only, missing runs listed.

Most tests write run directories with known summary.json files (no training, no
TensorFlow); the figures test reads two real tiny runs (source-only and DANN of one
seed) through the command line.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dann_serve.config import TrainConfig
from dann_serve.experiments.compare import run_dir
from dann_serve.experiments.markdown import BEGIN, END, ReportError, splice
from dann_serve.experiments.results_page import generate_report
from dann_serve.experiments.selection import top_scored

PAIR = ("src", "tgt")
ACCURACIES = {  # seed -> (source-only, DANN) target test accuracy
    0: (0.600, 0.700),
    1: (0.650, 0.720),
    2: (0.620, 0.760),
}


@pytest.fixture()
def write_run(tmp_path: Path):
    """Factory: a finished run directory (config.json, metrics.csv, summary.json) under
    ``tmp_path/runs`` with a known final target accuracy; ``finished=False`` leaves out
    summary.json, as a run still training does. ``kind="select"`` writes it where
    compare --select puts a selection, with ``extra`` added to its summary."""

    def write(
        pair, method, seed, accuracy, finished=True, unknown=None, kind=None, extra=None, **options
    ) -> Path:
        source, target = pair
        config = TrainConfig(source=source, target=target, method=method, seed=seed, **options)
        directory = run_dir(tmp_path / "runs", source, target, kind or method, seed)
        directory.mkdir(parents=True)
        data = {
            "source": {"name": source, "train": 1000, "test": 200},
            "target": {"name": target, "train": 500, "test": 100, "note": "Split by hand."},
        }
        saved = {**dataclasses.asdict(config), **(unknown or {})}
        (directory / "config.json").write_text(
            json.dumps({"options": saved, "versions": {"tensorflow": "2.21.0"}, "data": data})
        )
        rows = [
            "step,label_loss,domain_loss,lambda,learning_rate,source_accuracy,"
            "target_accuracy,domain_accuracy"
        ]
        for step, share in ((0, 0.2), (config.steps // 2, 0.8), (config.steps, 1.0)):
            rows.append(f"{step},0.5,0.6,0.5,0.01,0.9,{share * accuracy},0.7")
        (directory / "metrics.csv").write_text("\n".join(rows) + "\n")
        if finished:
            summary = {
                "step": config.steps,
                "method": method,
                "seed": seed,
                "source": source,
                "target": target,
                "target_test_accuracy": accuracy,
                **(extra or {}),
            }
            (directory / "summary.json").write_text(json.dumps(summary))
        return directory

    return write


@pytest.fixture()
def known_runs(tmp_path: Path, write_run) -> Path:
    for seed, (source_only, dann) in ACCURACIES.items():
        write_run(PAIR, "source-only", seed, source_only)
        write_run(PAIR, "dann", seed, dann)
    return tmp_path / "runs"


def _report(runs: Path, document: Path, pairs=(PAIR,), seeds=(0, 1, 2)) -> str:
    generate_report(runs, document, pairs, seeds, feature_images=0)
    return document.read_text(encoding="utf-8")


def _row(text: str, first_cell: str) -> str:
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    return row


def test_summary_and_seed_tables_hold_the_means_of_the_summaries(known_runs, tmp_path) -> None:
    text = _report(known_runs, tmp_path / "RESULTS.md")
    source_only = [100 * s for s, _ in ACCURACIES.values()]
    dann = [100 * d for _, d in ACCURACIES.values()]
    gains = [d - s for s, d in zip(source_only, dann, strict=True)]

    def cell(values: list[float]) -> str:
        return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"

    assert _row(text, "src -> tgt") == (
        f"| src -> tgt | {cell(source_only)} | {cell(dann)} | {statistics.mean(gains):+.1f} ± "
        f"{statistics.stdev(gains):.1f} | 3 of 3 | 3,000 | 128 |"
    )
    assert _row(text, "1") == "| 1 | 65.0 | 72.0 | +7.0 |"  # the per-seed table
    assert _row(text, "mean ± std").startswith(f"| mean ± std | {cell(source_only)} |")
    assert "Split by hand." in text  # the target's data note, from config.json
    assert "No target label chose anything" in text
    assert (tmp_path / "results" / "src-tgt-curves.png").stat().st_size > 0


def test_text_outside_the_markers_survives_byte_for_byte(known_runs, tmp_path) -> None:
    document = tmp_path / "RESULTS.md"
    before = "# Results\r\n\nHand-written, ünïcode, trailing spaces   \n\n"
    after = "\n\n## Discussion\r\nMore hand-written text.\n\n\n"
    document.write_bytes(f"{before}{BEGIN}\nstale figures\n{END}{after}".encode())

    first = _report(known_runs, document)
    raw = document.read_bytes()
    assert raw.startswith(f"{before}{BEGIN}\n".encode())
    assert raw.endswith(f"{END}{after}".encode())
    assert "stale figures" not in first
    assert _report(known_runs, document) == first  # regenerating changes nothing


def test_markers_are_created_on_top_of_a_document_without_them(known_runs, tmp_path) -> None:
    document = tmp_path / "RESULTS.md"
    original = "# Adaptation results\n\nAll hand-written.\n"
    document.write_text(original)
    text = _report(known_runs, document)
    assert text.startswith(BEGIN + "\n")
    assert text.endswith(f"{END}\n\n{original}")
    assert text.count(BEGIN) == text.count(END) == 1


def test_a_missing_document_is_created_with_the_markers(known_runs, tmp_path) -> None:
    text = _report(known_runs, tmp_path / "docs" / "RESULTS.md")
    assert text.startswith(BEGIN + "\n") and text.endswith(END + "\n")


@pytest.mark.parametrize(
    "document",
    [
        f"{BEGIN}\n{BEGIN}\n{END}\n",
        f"{END}\n{BEGIN}\n",
        f"{BEGIN}\nno end\n",
    ],
)
def test_broken_markers_are_refused_not_guessed(document: str) -> None:
    with pytest.raises(ReportError, match="once each"):
        splice(document, "block\n")


def test_missing_and_unfinished_runs_are_listed_not_fatal(tmp_path, write_run) -> None:
    write_run(PAIR, "source-only", 0, 0.6)
    write_run(PAIR, "dann", 0, 0.7)
    write_run(PAIR, "source-only", 1, 0.6)
    write_run(PAIR, "dann", 1, 0.7, finished=False)  # still training
    write_run(PAIR, "dann", 3, 0.9)  # a seed nobody asked for
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", pairs=(PAIR, ("x", "y")))

    assert _row(text, "src -> tgt").endswith("| 1 of 3 | 3,000 | 128 |")
    assert _row(text, "x -> y") == "| x -> y | missing | missing | - | 0 of 3 | - | - |"
    assert "source-only seed 2, DANN seed 2: missing" in text
    assert "DANN seed 1: unfinished" in text
    assert "source-only seed 1: finished, left out until the other method of its seed" in text
    assert "seeds not asked for (not reported): 3" in text
    assert "dann-serve compare --source x --target y --seeds 0,1,2" in text
    assert _row(text, "mean ± std").startswith("| mean ± std | 60.0 ± 0.0 | 70.0 ± 0.0 |")


def test_runs_that_differ_in_settings_are_flagged(tmp_path, write_run) -> None:
    write_run(PAIR, "source-only", 0, 0.6)
    write_run(PAIR, "dann", 0, 0.7, steps=5000)
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", seeds=(0,))
    assert "do not share their settings** (`steps`: 3000, 5000)" in text
    assert _row(text, "src -> tgt").endswith("| 3,000 / 5,000 | 128 |")
    assert "| steps | 3,000 / 5,000 * |" in text  # 5,000 is not the default


def test_options_without_a_row_of_their_own_are_still_shown(tmp_path, write_run) -> None:
    for method in ("source-only", "dann"):
        write_run(PAIR, method, 0, 0.6, unknown={"lambda_warmup": 500})
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", seeds=(0,))
    assert "| `lambda_warmup` | 500 |" in text


def test_a_pair_compared_with_another_method_is_reported_under_its_name(
    tmp_path, write_run
) -> None:
    write_run(PAIR, "source-only", 0, 0.6)
    write_run(PAIR, "cdan", 0, 0.75)
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", seeds=(0,))
    assert "| pair | source-only | CDAN+E | gain | seeds | steps | batch size |" in text
    assert _row(text, "src -> tgt").startswith("| src -> tgt | 60.0 ± 0.0 | 75.0 ± 0.0 | +15.0")
    assert "| seed | source-only | CDAN+E | CDAN+E - source-only |" in text


def test_runs_of_two_adapting_methods_of_one_pair_are_refused(tmp_path, write_run) -> None:
    for method, accuracy in (("source-only", 0.6), ("dann", 0.7), ("cdan", 0.75)):
        write_run(PAIR, method, 0, accuracy)
    with pytest.raises(ReportError, match=r"several adapting methods \(dann, cdan\)"):
        _report(tmp_path / "runs", tmp_path / "RESULTS.md", seeds=(0,))


def test_a_run_saved_before_methods_existed_is_listed_not_misread(tmp_path, write_run) -> None:
    write_run(PAIR, "source-only", 0, 0.6)
    former = write_run(PAIR, "dann", 0, 0.7)  # as a CDAN run of an older version saved it
    saved = json.loads((former / "config.json").read_text())
    del saved["options"]["method"]
    saved["options"] |= {"mode": "dann", "conditional": True, "class_weighting": False}
    (former / "config.json").write_text(json.dumps(saved))
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", seeds=(0,))
    assert "DANN seed 0: saved by a dann-serve older than --method" in text
    assert _row(text, "src -> tgt").startswith("| src -> tgt | missing | missing |")


def test_options_a_run_predates_are_shown_as_it_trained(tmp_path, write_run) -> None:
    """A run saved before the shifts' ramp and --precision trained with full-size shifts
    in float32: the page says so, whatever today's defaults and this machine."""
    for method, accuracy in (("source-only", 0.6), ("dann", 0.7)):
        run = write_run(PAIR, method, 0, accuracy)
        saved = json.loads((run / "config.json").read_text())
        del saved["options"]["shift_ramp"], saved["options"]["precision"]
        (run / "config.json").write_text(json.dumps(saved))
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", seeds=(0,))
    assert _row(text, "random shifts") == "| random shifts | up to 10% of the side * |"
    assert _row(text, "compute dtype") == "| compute dtype | float32 |"


def test_todays_runs_show_their_ramp_and_dtype_unmarked(tmp_path, write_run) -> None:
    for method, accuracy in (("source-only", 0.6), ("dann", 0.7)):
        write_run(PAIR, method, 0, accuracy, precision="mixed_bfloat16")
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", seeds=(0,))
    shifts = "| random shifts | up to 10% of the side, grown in like lambda |"
    assert _row(text, "random shifts") == shifts
    assert _row(text, "compute dtype") == "| compute dtype | mixed_bfloat16 |"


# -- --select runs ------------------------------------------------------------------------

# seed -> candidate -> (target accuracy, {criterion: score}); "dev" chose in both seeds.
SELECTIONS = {
    0: {
        "source-only": (0.60, {"dev": -1.0, "snd": 3.0, "entropy": -0.5}),
        "dann": (0.70, {"dev": -0.5, "snd": 2.0, "entropy": -0.5}),
        "cdan": (0.75, {"dev": -0.2, "snd": 1.0, "entropy": -0.5}),
    },
    1: {
        "source-only": (0.65, {"dev": -1.0, "snd": 2.0, "entropy": -0.1}),
        "dann": (0.72, {"dev": -0.2, "snd": 1.0, "entropy": -0.3}),
        "cdan": (0.70, {"dev": -0.5, "snd": 3.0, "entropy": -0.2}),
    },
}


SEPARABILITY = {0: 0.91, 1: 0.99}  # seed 0's domains read close, seed 1's far


def _write_selection(
    write_run, seed: int, criterion: str = "dev", vetoed: str | None = None
) -> None:
    """Both methods of ``seed`` and the selection over SELECTIONS[seed] that compare
    --select would leave: the top-scored candidate's run, with the table of candidates
    and the separability that chose them; ``vetoed`` names a candidate the class-share
    guard passed over."""
    rows = [
        {
            "name": name,
            "description": f"the {name} candidate",
            "path": f"/runs/{name}",
            "scores": scores,
            "target_test_accuracy": accuracy,
            "source_test_accuracy": 0.9,
        }
        for name, (accuracy, scores) in SELECTIONS[seed].items()
    ]
    for row in rows:
        row["passed_over"] = row["name"] == vetoed
        row["class_shift"] = 0.4 if row["passed_over"] else 0.1
    best = top_scored(rows, criterion)  # the guard reads the class shifts just set
    for row in rows:
        row["chosen"] = row is rows[best]
        if row["name"] in ("source-only", "dann"):
            write_run(PAIR, row["name"], seed, row["target_test_accuracy"])
    selection = {"criterion": criterion, "chosen": rows[best]["name"], "candidates": rows}
    selection |= {"separability": SEPARABILITY[seed], "close_below": 0.95}
    accuracy = rows[best]["target_test_accuracy"]
    chosen = rows[best]["name"]
    write_run(PAIR, chosen, seed, accuracy, kind="select", extra={"selection": selection})


def test_select_runs_add_columns_candidates_and_the_grading_of_the_criteria(
    tmp_path, write_run
) -> None:
    for seed in SELECTIONS:
        _write_selection(write_run, seed)
    other = ("x", "y")  # a pair without selections, reported beside as before
    write_run(other, "source-only", 0, 0.5)
    write_run(other, "dann", 0, 0.6)
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", pairs=(PAIR, other), seeds=(0, 1))

    assert "| pair | source-only | DANN | gain | --select | --select - source-only |" in text
    assert _row(text, "src -> tgt") == (
        "| src -> tgt | 62.5 ± 3.5 | 71.0 ± 1.4 | +8.5 ± 2.1 | 73.5 ± 2.1 | +11.0 ± 5.7 "
        "| 2 of 2 | 3,000 | 128 |"
    )
    assert _row(text, "x -> y").startswith(
        "| x -> y | 50.0 ± 0.0 | 60.0 ± 0.0 | +10.0 ± 0.0 | - | - |"
    )
    # Per seed: source-only, DANN, --select side by side, and the candidate kept.
    assert "| 0 | 60.0 | 70.0 | +10.0 | 75.0 | +15.0 | cdan |" in text
    assert "| 1 | 65.0 | 72.0 | +7.0 | 72.0 | +7.0 | dann |" in text
    assert "| mean ± std | 62.5 ± 3.5 | 71.0 ± 1.4 | +8.5 | 73.5 ± 2.1 | +11.0 |  |" in text
    # The candidates of each seed: scores, the choice, the accuracy read after the fact.
    assert (
        "| seed | candidate | `dev` | `snd` | `entropy` | chosen | target accuracy (measured "
        in text
    )
    assert "| 0 | source-only | -1.0000 | +3.0000 | -0.5000 |  | 60.0 |" in text
    assert "| 0 | cdan | -0.2000 | +1.0000 | -0.5000 | yes, by `dev` | 75.0 |" in text
    assert "| 1 | dann | -0.2000 | +1.0000 | -0.3000 | yes, by `dev` | 72.0 |" in text
    assert "- `cdan`: the cdan candidate\n" in text
    # How far apart each seed's domains started, which chose its candidate set.
    assert "seed 0 0.910 (close), seed 1 0.990 (far)." in text
    # The criteria against the labels: Spearman, top pick best, regret (worked by hand).
    assert "| `dev` | 2 of 2 | 2 | +1.00 | 2 of 2 | 0.0 |" in text
    assert "| `snd` | 0 of 2 | 2 | -0.75 | 0 of 2 | 8.5 |" in text
    assert (
        "| `entropy` | 0 of 2 | 2 | -1.00 (over 1 of 2 runs: the others tie) | 0 of 2 | 11.0 |"
        in text
    )
    # A pair without selections: no candidates of its own, and its runs' options
    # still agree (the selection's copied cdan run differs in its method alone).
    section = text.split("## x -> y")[1].split("## ")[0]
    assert "--select" not in section and "candidate" not in section
    assert "do not share their settings" not in text
    assert _report(tmp_path / "runs", tmp_path / "RESULTS.md", (PAIR, other), (0, 1)) == text


def test_a_missing_selection_keeps_its_seed_out_of_every_column(tmp_path, write_run) -> None:
    _write_selection(write_run, 0)
    write_run(PAIR, "source-only", 1, 0.65)  # seed 1 without its selection
    write_run(PAIR, "dann", 1, 0.72)
    write_run(PAIR, "source-only", 2, 0.65)  # seed 2 selecting: selection.json alone
    write_run(PAIR, "dann", 2, 0.72)
    (run_dir(tmp_path / "runs", *PAIR, "select", 2)).mkdir()
    (run_dir(tmp_path / "runs", *PAIR, "select", 2) / "selection.json").write_text("{}")
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", seeds=(0, 1, 2))
    assert _row(text, "src -> tgt").startswith(
        "| src -> tgt | 60.0 ± 0.0 | 70.0 ± 0.0 | +10.0 ± 0.0 | 75.0 ± 0.0 | +15.0 ± 0.0 | 1 of 3 |"
    )
    assert "--select seed 1: missing" in text
    assert "--select seed 2: unfinished (selecting or interrupted)" in text
    waiting = "finished, left out until the other runs of its seed finish"
    assert f"source-only seed 1, source-only seed 2, DANN seed 1, DANN seed 2: {waiting}" in text


def test_a_report_without_selections_has_none_of_their_tables(known_runs, tmp_path) -> None:
    text = _report(known_runs, tmp_path / "RESULTS.md")
    assert "| pair | source-only | DANN | gain | seeds | steps | batch size |" in text
    assert "| seed | source-only | DANN | DANN - source-only |\n|---|---|---|---|\n" in text
    assert "--select" not in text and "criterion" not in text and "candidate" not in text


def _rotated_cloud(rng: np.random.Generator, spreads: list[float], width: int) -> np.ndarray:
    """Points with the given spreads along random orthonormal directions in ``width``
    dimensions, off the origin, plus a little noise in every direction."""
    directions, _ = np.linalg.qr(rng.normal(size=(width, len(spreads))))
    latent = rng.normal(size=(300, len(spreads))) * np.array(spreads)
    return latent @ directions.T + 5.0 + rng.normal(scale=0.01, size=(300, width))


def test_pca_equals_an_eigendecomposition_of_the_covariance_up_to_sign() -> None:
    """Against an independent computation: the covariance matrix's eigenvectors, by
    falling eigenvalue. Each axis may differ only in sign, and that sign is the one
    that makes the axis's largest loading positive."""
    from dann_serve.experiments.embedding import pca

    points = _rotated_cloud(np.random.default_rng(0), [10.0, 3.0, 1.0], width=6)
    projected = pca(points, 3)
    assert projected.shape == (300, 3)

    centred = points - points.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    order = np.argsort(eigenvalues)[::-1][:3]
    for column, index in enumerate(order):
        axis = eigenvectors[:, index]
        axis = axis * np.sign(axis[np.abs(axis).argmax()])  # largest loading positive
        np.testing.assert_allclose(projected[:, column], centred @ axis, atol=1e-8)
    # Explained variance: the eigenvalues, in falling order.
    variances = projected.var(axis=0, ddof=1)
    np.testing.assert_allclose(variances, eigenvalues[order], rtol=1e-8)
    assert variances[0] > variances[1] > variances[2]


def test_pca_of_planar_points_keeps_every_distance() -> None:
    """Points on a 2-D plane in 8-D (shifted off the origin): their two principal axes
    span that plane, so the projection is a rigid motion of the points."""
    from dann_serve.experiments.embedding import pca

    rng = np.random.default_rng(1)
    directions, _ = np.linalg.qr(rng.normal(size=(8, 2)))
    plane = rng.normal(size=(50, 2)) * np.array([4.0, 1.5])
    points = plane @ directions.T + rng.normal(size=8)
    projected = pca(points)

    def distances(x: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)

    np.testing.assert_allclose(distances(projected), distances(plane), atol=1e-9)
    np.testing.assert_allclose(projected.mean(axis=0), 0.0, atol=1e-9)
    assert projected[:, 0].var() > projected[:, 1].var()  # the wider direction first


@pytest.fixture(scope="module")
def tiny_runs(trained_run: Path, tmp_path_factory) -> Path:
    """Both methods of seed 0 on the tiny pair in dann-serve compare's layout: the shared
    DANN run, and a source-only run with its exact settings."""
    from dann_serve.training.loop import train_run
    from dann_serve.training.rundir import load_config

    config = load_config(trained_run)
    runs = tmp_path_factory.mktemp("compare")
    shutil.copytree(trained_run, run_dir(runs, config.source, config.target, "dann", 0))
    baseline = dataclasses.replace(config, method="source-only")
    train_run(
        baseline, run_dir(runs, config.source, config.target, "source-only", 0), show_progress=False
    )
    return runs


def test_report_command_draws_curves_and_feature_pictures(tiny_runs, tiny_pair, tmp_path) -> None:
    from dann_serve.cli import main

    source, target = tiny_pair
    document = tmp_path / "docs" / "RESULTS.md"
    result = CliRunner().invoke(
        main,
        [
            "report",
            "--runs",
            str(tiny_runs),
            "--out",
            str(document),
            "--seeds",
            "0",
            "--pairs",
            f"{source}:{target}",
            "--feature-images",
            "40",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{source} -> {target}: 1 of 1 seeds complete" in result.output
    text = document.read_text()
    for kind in ("curves", "features"):
        png = tmp_path / "docs" / "results" / f"{source}-{target}-{kind}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert f"](results/{source}-{target}-{kind}.png)" in text
    assert "read the same 40 source and 40 target test images" in text
    assert "t-SNE below" in text


def test_report_command_writes_beside_the_runs_unless_told_where(
    known_runs, tmp_path, monkeypatch
) -> None:
    """Run from a checkout without --out, the report and its figures land in the runs
    folder and the repository's own docs/RESULTS.md stays as it was."""
    from dann_serve.cli import main

    hand_written = "# Results\n\nWritten by hand.\n"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "RESULTS.md").write_text(hand_written)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["report", "--runs", "runs", "--pairs", "src:tgt", "--feature-images", "0"]
    )
    assert result.exit_code == 0, result.output
    document = Path("runs") / "RESULTS.md"
    assert result.output.splitlines()[-1] == f"{document}: 1 pair(s), 1 figure(s)"
    assert _row(document.read_text(), "1") == "| 1 | 65.0 | 72.0 | +7.0 |"
    assert (known_runs / "results" / "src-tgt-curves.png").stat().st_size > 1000
    assert (tmp_path / "docs" / "RESULTS.md").read_text() == hand_written
    assert sorted(path.name for path in (tmp_path / "docs").iterdir()) == ["RESULTS.md"]


def test_report_command_names_a_missing_runs_folder_in_one_line(tmp_path) -> None:
    from dann_serve.cli import main

    result = CliRunner().invoke(
        main, ["report", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "RESULTS.md")]
    )
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"dann-serve: error: {tmp_path / 'nope'}: no such folder of runs")
    assert not (tmp_path / "RESULTS.md").exists()


def test_report_command_rejects_a_malformed_pair(tmp_path) -> None:
    from dann_serve.cli import main

    result = CliRunner().invoke(main, ["report", "--runs", str(tmp_path), "--pairs", "usps"])
    assert result.exit_code == 2
    assert "SOURCE:TARGET" in result.output


def test_a_candidate_the_guard_passed_over_says_so(tmp_path, write_run) -> None:
    _write_selection(write_run, 0, vetoed="cdan")
    text = _report(tmp_path / "runs", tmp_path / "RESULTS.md", pairs=(PAIR,), seeds=(0,))
    assert "| 0 | cdan | -0.2000 | +1.0000 | -0.5000 | passed over: class shift 0.400 | 75.0 |" in (
        text
    )
    assert "| 0 | dann | -0.5000 | +2.0000 | -0.5000 | yes, by `dev` | 70.0 |" in text

"""``compare --select`` and ``report`` on real tiny runs: per seed the source-only and DANN
runs of compare are the selection's candidates of those methods (each trained once), and
the report shows the three side by side with the candidates and the criteria's grades.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from dann_serve.experiments.compare import pair_dir
from dann_serve.experiments.results_page import generate_report
from dann_serve.experiments.selection import FAR_CANDIDATES

OPTIONS = ("--steps", "20", "--batch-size", "32", "--eval-every", "10")
# Every test reads one compare --select: four runs trained, then the command run again.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compared(tiny_pair, tmp_path_factory) -> tuple[Path, Counter, str]:
    """``compare --select`` for seed 0 on the tiny pair, run twice; the runs folder,
    the training runs started per directory and the second run's printed table."""
    import dann_serve.training.loop as loop
    from dann_serve.cli import main

    out = tmp_path_factory.mktemp("compare")
    trained: Counter = Counter()
    train_run = loop.train_run

    def counted(config, run_dir, *args, **kwargs):
        trained[Path(run_dir).resolve().relative_to(out.resolve()).as_posix()] += 1
        return train_run(config, run_dir, *args, **kwargs)

    source, target = tiny_pair
    command = ["compare", "--source", source, "--target", target, "--seeds", "0", *OPTIONS]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "train_run", counted)
        outputs = []
        for _ in range(2):  # the second finds every run finished and trains nothing
            result = CliRunner().invoke(main, [*command, "--out", str(out), "--select", "--quiet"])
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
    return out, trained, outputs[1]


def test_compare_select_trains_each_candidate_once_where_compare_keeps_its_runs(
    compared, tiny_pair
) -> None:
    out, trained, _ = compared
    slug = pair_dir(Path(""), *tiny_pair).as_posix()
    placed = {name: f"{slug}/{name}-seed0" for name in ("source-only", "dann")}
    expected = {placed.get(n, f"{slug}/select-seed0/candidates/{n}") for n in FAR_CANDIDATES}
    assert trained == Counter(expected)  # every candidate once, over both invocations
    summary = json.loads((out / slug / "select-seed0" / "summary.json").read_text())
    rows = {row["name"]: row for row in summary["selection"]["candidates"]}
    for name, where in placed.items():
        assert Path(rows[name]["path"]).resolve() == (out / where).resolve()
        own = json.loads((out / where / "summary.json").read_text())
        assert rows[name]["target_test_accuracy"] == own["target_test_accuracy"]
    assert not (out / slug / "select-seed0" / "candidates" / "source-only").exists()


def test_compare_select_prints_the_select_column(compared, tiny_pair) -> None:
    out, _, printed = compared
    slug = pair_dir(Path(""), *tiny_pair).as_posix()

    def accuracy(kind: str) -> float:
        path = out / slug / f"{kind}-seed0" / "summary.json"
        return json.loads(path.read_text())["target_test_accuracy"]

    lines = printed.splitlines()
    assert lines[0] == (
        "| seed | source-only | DANN | DANN - source-only | --select | "
        "--select - source-only | chosen |"
    )
    chosen = json.loads((out / slug / "select-seed0" / "summary.json").read_text())
    source_only, select = accuracy("source-only"), accuracy("select")
    assert lines[2] == (
        f"| 0 | {100 * source_only:.1f} | {100 * accuracy('dann'):.1f} | "
        f"{100 * (accuracy('dann') - source_only):+.1f} | {100 * select:.1f} | "
        f"{100 * (select - source_only):+.1f} | {chosen['selection']['chosen']} |"
    )


def test_report_of_compare_select_shows_the_three_runs_candidates_and_grades(
    compared, tiny_pair, tmp_path
) -> None:
    out, _, _ = compared
    document = tmp_path / "RESULTS.md"
    generate_report(out, document, [tiny_pair], [0], feature_images=0)
    text = document.read_text()
    assert "| --select | --select - source-only | seeds |" in text
    assert f"| {tiny_pair[0]} -> {tiny_pair[1]} |" in text
    summary_row = next(line for line in text.splitlines() if line.startswith("| tiny-"))
    assert summary_row.count("±") == 5 and "| 1 of 1 |" in summary_row
    for candidate in FAR_CANDIDATES:  # the tiny pair's domains are far apart
        assert f"| 0 | {candidate} | " in text
    separability = json.loads(
        (out / pair_dir(Path(""), *tiny_pair) / "select-seed0" / "summary.json").read_text()
    )["selection"]["separability"]
    assert f"seed 0 {separability:.3f} (far)" in text
    assert text.count("yes, by `") == 1
    assert "## How well each criterion ranks the candidates" in text
    for criterion in ("dev", "snd", "entropy"):
        assert f"| `{criterion}` | " in text

import pytest

from dann_serve.experiments.compare import pair_table


def _summary(seed: int, method: str, accuracy: float) -> dict:
    return {"seed": seed, "method": method, "target_test_accuracy": accuracy}


def test_pair_table_pairs_methods_by_seed_and_averages_the_gain() -> None:
    summaries = [
        _summary(0, "dann", 0.70),
        _summary(0, "source-only", 0.60),
        _summary(1, "source-only", 0.66),
        _summary(1, "dann", 0.62),
    ]
    table, figures = pair_table(summaries)
    lines = table.splitlines()
    assert lines[2] == "| 0 | 60.0 | 70.0 | +10.0 |"
    assert lines[3] == "| 1 | 66.0 | 62.0 | -4.0 |"
    assert lines[4].startswith("| mean ± std | 63.0 ± 4.2 | 66.0 ± 5.7 | +3.0 |")
    assert figures["gain_mean"] == pytest.approx(0.03)


def test_compare_rejects_bad_seed_lists(tmp_path) -> None:
    from click.testing import CliRunner

    from dann_serve.cli import main

    result = CliRunner().invoke(main, ["compare", "--seeds", "1,x", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "comma-separated integers" in result.output


def test_pair_table_adds_the_select_run_and_the_candidate_it_kept() -> None:
    selection = {"chosen": "dann-cw", "criterion": "dev", "candidates": []}
    selected = {**_summary(0, "dann", 0.75), "selection": selection}
    table, figures = pair_table(
        [_summary(0, "source-only", 0.60), _summary(0, "dann", 0.70)], [selected]
    )
    assert table.splitlines()[0].endswith("| --select | --select - source-only | chosen |")
    assert table.splitlines()[2] == "| 0 | 60.0 | 70.0 | +10.0 | 75.0 | +15.0 | dann-cw |"
    assert figures["select_gain_mean"] == pytest.approx(0.15)


def test_pair_table_without_target_labels_lists_the_select_run_by_its_choice() -> None:
    def unknown(method: str, **extra) -> dict:
        return {**_summary(0, method, None), "source_test_accuracy": 0.9, **extra}

    selected = unknown("dann", selection={"chosen": "dann", "criterion": "dev"})
    table, figures = pair_table([unknown("dann"), unknown("source-only")], [selected])
    kinds = [line.split(" | ")[1] for line in table.splitlines()[2:5]]
    assert kinds == ["source-only", "DANN", "--select (dann)"]
    assert figures["select_mean"] is None


def test_pair_table_heads_its_columns_with_the_adapting_method() -> None:
    table, figures = pair_table([_summary(0, "cdan", 0.72), _summary(0, "source-only", 0.60)])
    assert table.splitlines()[0] == "| seed | source-only | CDAN+E | CDAN+E - source-only |"
    assert figures["adapted_mean"] == pytest.approx(0.72)
    assert figures["gain_mean"] == pytest.approx(0.12)

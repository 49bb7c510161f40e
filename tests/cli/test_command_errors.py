"""The dann-serve command as a user meets it: one-line errors, right exit codes."""

from click.testing import CliRunner

from dann_serve.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_bad_option_values_are_usage_errors() -> None:
    result = _run("train", "--out", "x", "--batch-size", "33")
    assert result.exit_code == 2
    assert "even" in result.output
    assert "Traceback" not in result.output


def test_unknown_dataset_is_one_line(tmp_path) -> None:
    result = _run("train", "--source", "nope", "--out", str(tmp_path / "run"), "--quiet")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("dann-serve: error: unknown data set 'nope': choose one of ")
    assert "digits" in line and "fonts" in line


def test_evaluate_missing_run_is_one_line(tmp_path) -> None:
    result = _run("evaluate", str(tmp_path / "missing"), "--dataset", "digits")
    assert result.exit_code == 1
    assert "not a training run (config.json is missing)" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_export_missing_run_is_one_line(tmp_path) -> None:
    result = _run("export", str(tmp_path / "missing"), "--model-dir", str(tmp_path / "m"))
    assert result.exit_code == 1
    assert "no such run directory" in result.output
    assert not (tmp_path / "m").exists()


def test_samples_writes_labelled_pngs(tmp_path) -> None:
    from PIL import Image

    result = _run("samples", "--dataset", "digits", "--count", "3", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.png"))
    assert [f.name.split("-label")[0] for f in files] == [
        "digits-test-0000",
        "digits-test-0001",
        "digits-test-0002",
    ]
    assert Image.open(files[0]).size == (32, 32)


def test_train_help_offers_every_registered_method_and_no_former_switch() -> None:
    from dann_serve.training.methods import get_method, method_names

    result = _run("train", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # help lines are wrapped
    assert f"--method [{'|'.join(method_names())}]" in text
    for name in method_names():
        assert f"{name}: {get_method(name).description}" in text
    for former in ("--mode", "--conditional", "--class-weighting"):
        assert former not in text
    assert _run("train", "--out", "x", "--method", "nope").exit_code == 2


def test_select_and_method_together_are_a_usage_error(tmp_path) -> None:
    result = _run("train", "--select", "--method", "cdan", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "leave out --method" in result.output
    assert not (tmp_path / "run").exists()


def test_compare_needs_an_adapting_method(tmp_path) -> None:
    result = _run("compare", "--method", "source-only", "--out", str(tmp_path))
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert "adapting --method" in line

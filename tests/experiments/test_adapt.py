"""``dann-serve adapt``: a finished run adapted again to a new folder of unlabelled images.

What a user relies on: the result is a finished run that says where it came from; it is
never worse than the parent by the label-free criterion (the parent wins where the new
run scores lower, and ties); a warm start begins at the parent's model; bad inputs are
refused in one line with nothing written; an export of the run carries its lineage.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dann_client.preprocessing import save_image
from dann_serve.cli import main
from dann_serve.config import CAPTURE_MANIFEST, TrainConfig
from dann_serve.data import Domain
from dann_serve.training.evaluation import restore_model

STEPS = ("--steps", "20", "--quiet")


def _adapt(*args: str):
    return CliRunner().invoke(main, ["adapt", *map(str, args)])


def _weights(run: Path) -> list[np.ndarray]:
    """The learned weights of a run's model (not the schedules' state it also holds)."""
    return [weight.numpy() for weight in restore_model(run).trainable_weights]


@pytest.fixture(scope="module")
def new_images(tiny_target: Domain, tmp_path_factory) -> Path:
    """A flat folder of unlabelled PNG files and the manifest naming the model version
    that answered them, as a capture folder is."""
    folder = tmp_path_factory.mktemp("captured")
    for index, image in enumerate(tiny_target.train.images[:64]):
        save_image(image, folder / f"{index:03d}.png")
    (folder / CAPTURE_MANIFEST).write_text('{"model": "dann", "version": 3}\n')
    return folder


@pytest.fixture(scope="module")
def adapted(trained_run: Path, new_images: Path, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("adapt") / "new"
    result = _adapt(trained_run, "--target", new_images, "--out", out, *STEPS)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_adapt_writes_a_finished_run_with_its_lineage(
    adapted: tuple[Path, str], trained_run: Path, new_images: Path
) -> None:
    out, output = adapted
    expected = {
        "parent_run": str(trained_run.resolve()),
        "parent_version": 3,  # the version that answered the captured images
        "target": str(new_images.resolve()),
        "start": "warm",
    }
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert config["lineage"] == expected
    assert summary["lineage"] == expected
    assert config["options"]["target"] == str(new_images.resolve())
    # A warm start's network reads digits already: its shifts need no ramp.
    adapted_run = json.loads((out / "candidates" / "adapted" / "config.json").read_text())
    assert adapted_run["options"]["shift_ramp"] is False
    assert restore_model(out) is not None  # an ordinary run: evaluate and export read it
    names = [row["name"] for row in summary["adaptation"]["candidates"]]
    assert names == ["parent", "adapted"]
    assert [line.lstrip("* ").split()[0] for line in output.splitlines()[:2]] == names


def test_the_run_is_the_candidate_the_criterion_ranks_first(adapted: tuple[Path, str]) -> None:
    out, output = adapted
    adaptation = json.loads((out / "summary.json").read_text())["adaptation"]
    by_name = {row["name"]: row for row in adaptation["candidates"]}
    scores = {name: row["scores"]["entropy"] for name, row in by_name.items()}
    winner = "adapted" if scores["adapted"] > scores["parent"] else "parent"
    assert adaptation["chosen"] == winner
    kept = Path(by_name[winner]["path"])
    for mine, theirs in zip(_weights(out), _weights(kept), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert ("the run is its model" in output) == (winner == "parent")


@pytest.mark.parametrize("adapted_score", [-1.0, 0.0])
def test_the_parent_wins_when_the_new_run_scores_lower_or_ties(
    adapted_score: float,
    trained_run: Path,
    new_images: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dann_serve.experiments import criteria

    def score(run_dir: Path, names: tuple[str, ...]) -> dict:
        value = adapted_score if Path(run_dir).name == "adapted" else 0.0
        return dict.fromkeys(names, value)

    monkeypatch.setattr(criteria, "score_run", score)
    out = tmp_path / "new"
    result = _adapt(trained_run, "--target", new_images, "--out", out, "--steps", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert (
        result.output.strip()
        .splitlines()[-1]
        .endswith("the parent scores better on the new target; the run is its model")
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["adaptation"]["parent_kept"] is True
    assert summary["target"] == str(new_images.resolve())  # re-measured on the new target
    for mine, parents in zip(_weights(out), _weights(trained_run), strict=True):
        np.testing.assert_array_equal(mine, parents)


def test_a_warm_start_begins_at_the_parents_model(trained_run: Path, tmp_path: Path) -> None:
    """With no learning the weights stay where they started: at the parent's."""
    from dann_serve.training.loop import train_run
    from dann_serve.training.rundir import load_config

    parent = load_config(trained_run)
    config = TrainConfig(**{**vars(parent), "steps": 1, "learning_rate": 0.0})
    train_run(config, tmp_path / "run", show_progress=False, warm_from=trained_run)
    for mine, parents in zip(_weights(tmp_path / "run"), _weights(trained_run), strict=True):
        # The weight average's update rounds in the last bit; a random start is far off.
        np.testing.assert_allclose(mine, parents, rtol=0, atol=1e-6)


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("dann-serve: error: ")
    for fragment in fragments:
        assert fragment in line


def test_bad_inputs_are_refused_in_one_line_with_nothing_written(
    trained_run: Path, new_images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "new"
    not_a_run = tmp_path / "empty-run"
    not_a_run.mkdir()
    _one_line_error(
        _adapt(not_a_run, "--target", new_images, "--out", out), "not a finished training run"
    )
    _one_line_error(
        _adapt(trained_run, "--target", tmp_path / "missing", "--out", out), "no such folder"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(_adapt(trained_run, "--target", empty, "--out", out), "no image files")
    assert not out.exists()
    out.mkdir()
    (out / "something").write_text("mine")
    _one_line_error(_adapt(trained_run, "--target", new_images, "--out", out), "not empty")
    assert [path.name for path in out.iterdir()] == ["something"]
    usage = _adapt(trained_run, "--target", new_images, "--out", out, "--start", "lukewarm")
    assert usage.exit_code == 2


def test_resume_needs_an_adaptation_to_continue(
    trained_run: Path, new_images: Path, tmp_path: Path
) -> None:
    result = _adapt(trained_run, "--target", new_images, "--out", tmp_path / "new", "--resume")
    _one_line_error(result, "no adaptation to resume")


def test_an_interrupted_adaptation_resumes_with_its_plan(
    trained_run: Path, new_images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "new"
    args = (trained_run, "--target", new_images, "--out", out, "--quiet")
    assert _adapt(*args, "--steps", "1").exit_code == 0
    expected = json.loads((out / "summary.json").read_text())
    (out / "summary.json").unlink()  # as if stopped before the end
    elsewhere = tmp_path / "other-images"
    elsewhere.mkdir()
    _one_line_error(
        _adapt(trained_run, "--target", elsewhere, "--out", out, "--resume"), "adapts another run"
    )
    _one_line_error(_adapt(*args, "--resume", "--method", "mcc"), "method dann -> mcc")
    result = _adapt(*args, "--resume")  # the saved steps and start, not the defaults
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lineage"] == expected["lineage"]
    assert summary["adaptation"]["steps"] == 1
    assert summary["adaptation"]["train_seconds"] is None  # trained before, not timed again


def test_export_carries_the_lineage(
    adapted: tuple[Path, str], exported_model: Path, tmp_path: Path
) -> None:
    from dann_serve.export import export_run

    out, _ = adapted
    report = json.loads((export_run(out, tmp_path / "models").path / "export.json").read_text())
    assert report["lineage"] == json.loads((out / "config.json").read_text())["lineage"]
    first = json.loads((exported_model / "export.json").read_text())
    assert first["lineage"] is None  # a first training has no parent


def test_the_method_is_the_parents_unless_given(
    adapted: tuple[Path, str], trained_run: Path, new_images: Path, tmp_path: Path
) -> None:
    parents = json.loads((trained_run / "config.json").read_text())["options"]["method"]
    out, _ = adapted
    kept = json.loads((out / "candidates" / "adapted" / "config.json").read_text())
    assert kept["options"]["method"] == parents
    other = "mcc" if parents != "mcc" else "dann"
    result = _adapt(
        trained_run, "--target", new_images, "--out", tmp_path / "new", "--method", other, *STEPS
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "new" / "candidates" / "adapted" / "config.json").read_text())
    assert config["options"]["method"] == other
    assert f"{other}, 20 steps from warm weights" in result.output
    unknown = _adapt(trained_run, "--target", new_images, "--out", tmp_path / "x", "--method", "no")
    assert unknown.exit_code == 2


def test_colour_images_are_adapted_with_a_textured_source() -> None:
    from dann_serve.data import is_colour
    from dann_serve.experiments.adaptation import adapt_method

    grey = np.repeat(np.random.default_rng(0).integers(0, 256, (8, 32, 32, 1)), 3, axis=-1)
    noisy = grey.copy()
    noisy[..., 0] = np.clip(noisy[..., 0] + 8, 0, 255)  # a JPEG's chroma noise, say
    colour = grey.copy()
    colour[:, :8, :, 0] = 255 - colour[:, :8, :, 0]  # a quarter of each image coloured
    assert not is_colour(grey.astype(np.uint8)) and not is_colour(noisy.astype(np.uint8))
    assert is_colour(colour.astype(np.uint8))
    assert adapt_method("dann", None, grey) == "dann"
    assert adapt_method("dann", None, colour) == "dann-texture"
    assert adapt_method("dann", "mcc", colour) == "mcc"


def test_an_unreadable_capture_manifest_leaves_the_parent_version_unknown(tmp_path: Path) -> None:
    from dann_serve.config import CAPTURE_MANIFEST
    from dann_serve.experiments.adaptation import captured_version

    manifest = tmp_path / CAPTURE_MANIFEST
    for content in (b"\xff\xfe not utf-8", b"[1, 2]", b'{"version": "3"}', b'{"version": true}'):
        manifest.write_bytes(content)
        assert captured_version(tmp_path) is None, content
    manifest.write_text('{"model": "dann", "version": 3}')
    assert captured_version(tmp_path) == 3


def test_adapt_keeps_the_better_score_whatever_the_class_shares(
    trained_run: Path, new_images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Captured images may hold any mix of classes: --select's class-share guard, which
    reads the source's mix as the yardstick, does not apply to adapt."""
    from dann_serve.config import CLASS_SHIFT
    from dann_serve.experiments import criteria

    def score(run_dir: Path, names: tuple[str, ...]) -> dict:
        adapted = Path(run_dir).name == "adapted"
        scores = dict.fromkeys(names, 1.0 if adapted else 0.0)
        return {**scores, CLASS_SHIFT: 0.5 if adapted else 0.1} if CLASS_SHIFT in names else scores

    monkeypatch.setattr(criteria, "score_run", score)
    out = tmp_path / "new"
    result = _adapt(trained_run, "--target", new_images, "--out", out, "--steps", "1", "--quiet")
    assert result.exit_code == 0, result.output
    adaptation = json.loads((out / "summary.json").read_text())["adaptation"]
    assert not adaptation["parent_kept"]
    assert [row["passed_over"] for row in adaptation["candidates"]] == [False, False]

"""``dann-serve promote``: a version label moved in ``models.config`` in one atomic,
durable step, every other field kept, and refused (file untouched, one error line)
wherever the server would refuse the result or the user meant something else.

The versions here are folders holding an empty ``saved_model.pb``: promote reads what
is exported from the tree, it loads nothing. ``test_version_labels`` serves real ones.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from dann_serve.cli import main
from dann_serve.serving.model_config import ConfigError, promote, read_config

HEADER = "# Why this config: kept by promote.\n#\n"
CONFIG = (
    HEADER
    + """
model_config_list {
  config {
    name: "dann"
    base_path: "/models/dann"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    logging_config { sampling_config { sampling_rate: 0.25 } }
  }
  config {
    name: "other"
    base_path: "/models/other"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 7 }
  }
}
"""
)


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    """dann 1, 2 and 3 exported (the policy serves 1 and 2), other 7; the config above."""
    root = tmp_path / "models"
    for name, version in [("dann", 1), ("dann", 2), ("dann", 3), ("other", 7)]:
        (root / name / str(version)).mkdir(parents=True)
        (root / name / str(version) / "saved_model.pb").touch()
    (root / "models.config").write_text(CONFIG)
    return root


def parsed(text: str):
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_promote_moves_one_label_and_keeps_every_other_field(model_dir: Path):
    moved = promote(model_dir, "dann", 2, "canary")
    assert (moved.label, moved.version, moved.previous) == ("canary", 2, None)
    want = parsed(CONFIG)
    want.model_config_list.config[0].version_labels["canary"] = 2
    assert read_config(model_dir / "models.config") == want

    moved = promote(model_dir, "dann", 2, "stable")  # the canary becomes stable
    assert moved.previous == 1
    moved = promote(model_dir, "dann", 1, "stable")  # and the rollback is a promote back
    assert moved.previous == 2
    assert read_config(model_dir / "models.config") == want
    assert (model_dir / "models.config").read_text().startswith(HEADER + "\nmodel_config_list {")
    assert not list(model_dir.glob("*.tmp"))


def test_promote_writes_a_whole_file_durably_then_renames_it(model_dir, monkeypatch):
    """The new content is complete and synced in a file of the same folder before one
    rename puts it in place, and the folder is synced after it: a server polling the
    file reads the old config or the new one, and a crash leaves one of the two."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source, destination) -> None:
        source, destination = Path(source), Path(destination)
        assert source.parent == destination.parent
        assert read_config(source).model_config_list.config[0].version_labels["canary"] == 2
        events.append(("replace", str(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    promote(model_dir, "dann", 2, "canary")
    config, temporary = str(model_dir / "models.config"), str(model_dir / "models.config.tmp")
    assert events == [("fsync", temporary), ("replace", config), ("fsync", str(model_dir))]


def test_a_promote_that_dies_before_the_rename_leaves_the_old_file(model_dir, monkeypatch):
    before = (model_dir / "models.config").read_bytes()

    def crash(source, destination) -> None:
        raise KeyboardInterrupt  # killed between writing the new file and renaming it

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        promote(model_dir, "dann", 2, "canary")
    assert (model_dir / "models.config").read_bytes() == before


@pytest.mark.parametrize(
    ("name", "version", "label", "message"),
    [
        ("dann", 4, "canary", r"dann version 4 is not exported under .*dann \(1, 2, 3 are\)"),
        ("dann", 3, "canary", r"dann version 3 is exported but not served: .* serves 2, 1"),
        ("nope", 1, "canary", r"does not list model 'nope' \(it lists dann, other\)"),
        ("dann", 2, "can ary", r"label 'can ary': use up to 64 letters"),
        ("dann", 2, "../x", r"label '../x'"),
    ],
)
def test_promote_refuses_what_the_server_would_refuse(model_dir, name, version, label, message):
    before = (model_dir / "models.config").read_bytes()
    with pytest.raises(ConfigError, match=message):
        promote(model_dir, name, version, label)
    assert (model_dir / "models.config").read_bytes() == before


def test_the_latest_policy_serves_what_promote_accepts(model_dir):
    """``other`` serves its 2 newest versions: 7 only, until 8 is exported."""
    (model_dir / "other" / "8").mkdir()
    (model_dir / "other" / "8" / "saved_model.pb").touch()
    assert promote(model_dir, "other", 8, "canary").previous is None
    with pytest.raises(ConfigError, match="version 6 is not exported"):
        promote(model_dir, "other", 6, "canary")


def test_a_missing_config_is_refused_not_created(model_dir):
    """Without a config the server serves every model in the tree, with one only the
    models it lists: writing one would change what is served, so promote says so."""
    (model_dir / "models.config").unlink()
    with pytest.raises(ConfigError, match=r"models\.config does not exist"):
        promote(model_dir, "dann", 1, "stable")
    assert not (model_dir / "models.config").exists()


def test_the_command_prints_one_line_and_fails_in_one_line(model_dir):
    runner = CliRunner()
    common = ["promote", "--model-dir", str(model_dir), "--label", "canary"]
    done = runner.invoke(main, [*common, "--version", "2"])
    assert done.exit_code == 0, done.output
    assert done.output == f"{model_dir / 'models.config'}: dann label canary -> version 2 (new)\n"

    refused = runner.invoke(main, [*common, "--version", "9"])
    assert refused.exit_code == 1
    assert refused.output.splitlines() == [
        f"dann-serve: error: dann version 9 is not exported under {model_dir / 'dann'}"
        " (1, 2, 3 are)"
    ]
    bad_file = model_dir / "broken.config"
    bad_file.write_text("model_config_list { config { nme: 'x' } }")
    broken = runner.invoke(main, [*common, "--version", "2", "--model-config-file", str(bad_file)])
    assert broken.exit_code == 1 and len(broken.output.splitlines()) == 1
    assert "broken.config" in broken.output and "nme" in broken.output


def test_promotes_at_once_each_keep_the_others_change(model_dir):
    """Each reads and rewrites the whole file; they take turns (a lock on the folder),
    so none reads it while another rewrites it and drops the other's label."""
    labels = [f"canary-{index}" for index in range(12)]
    with ThreadPoolExecutor(len(labels)) as pool:
        list(pool.map(lambda label: promote(model_dir, "dann", 2, label), labels))
    written = read_config(model_dir / "models.config").model_config_list.config[0]
    assert set(labels) <= set(written.version_labels)

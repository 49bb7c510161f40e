import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from dann_client.contract import SIGNATURE_ROWS, SIGNATURE_TABLE
from dann_serve.config import TrainConfig
from dann_serve.data.pipeline import to_unit_range
from dann_serve.export.checks import ExportError, metagraph_parity
from dann_serve.export.publish import exchange, export_run, next_version
from dann_serve.export.signatures import (
    EXAMPLE_MAKERS,
    ServingModule,
    input_spec,
    signature_function,
)
from dann_serve.serving.loader import MetaGraphModel
from dann_serve.serving.model_config import read_config

LABEL_OUTPUTS = {"probabilities": ([None, 10], tf.float32), "label": ([None], tf.int64)}
SIGNATURE_SHAPES = {
    "predict_label": LABEL_OUTPUTS,
    "classify_domain": {"probabilities": ([None, 2], tf.float32), "domain": ([None], tf.int64)},
    "serving_default": LABEL_OUTPUTS,
}
# Each signature's input: (shape, dtype); the twins answer as predict_label.
INPUTS = {
    "predict_label": ([None, 32, 32, 3], tf.float32),
    "classify_domain": ([None, 32, 32, 3], tf.float32),
    "serving_default": ([None, 32, 32, 3], tf.float32),
    "predict_label_uint8": ([None, 32, 32, 3], tf.uint8),
    "predict_image": ([None], tf.string),
}


@pytest.fixture(scope="module")
def report(exported_model) -> dict:
    return json.loads((exported_model / "export.json").read_text())


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_signatures_have_the_contract_names_dtypes_and_shapes(in_process, name: str) -> None:
    function = in_process.signatures[name]
    _, inputs = function.structured_input_signature
    assert list(inputs) == ["images"]
    assert inputs["images"].dtype == INPUTS[name][1]
    assert inputs["images"].shape.as_list() == INPUTS[name][0]
    outputs = function.structured_outputs
    want = SIGNATURE_SHAPES.get(name, LABEL_OUTPUTS)
    assert set(outputs) == set(want)
    for output, (shape, dtype) in want.items():
        assert outputs[output].shape.as_list() == shape
        assert outputs[output].dtype == dtype


@pytest.mark.parametrize("row", SIGNATURE_TABLE, ids=lambda row: row.name)
def test_each_row_of_the_signature_table_is_a_function_of_the_serving_module(row) -> None:
    """A row without its method, or a twin whose answers differ in form from the
    signature it stands for, is found here rather than half-way through an export."""
    (spec,) = getattr(ServingModule, row.name).input_signature
    assert spec == input_spec(row)
    assert row.example in EXAMPLE_MAKERS
    reference = SIGNATURE_ROWS[row.answers_as]
    assert reference.answers_as == reference.name
    assert row.outputs == reference.outputs


def test_a_serving_function_without_a_row_is_refused_by_name() -> None:
    def predict_nothing(self, images):
        return {}

    with pytest.raises(LookupError, match=r"ServingModule\.predict_nothing has no row"):
        signature_function(predict_nothing)


def test_export_lands_in_the_serving_layout(exported_model) -> None:
    assert exported_model.name == "1"
    assert (exported_model / "saved_model.pb").exists()
    assert (exported_model / "onnx" / "predict_label.onnx").exists()
    assert (exported_model / "onnx" / "classify_domain.onnx").exists()
    assert (exported_model / "onnx" / "predict_label_uint8.onnx").exists()
    assert not (exported_model / "onnx" / "predict_image.onnx").exists()
    assert not [p for p in exported_model.parent.iterdir() if p.name.startswith(".")]


def test_onnx_parity_is_recorded_and_tight(report) -> None:
    assert report["onnx"]["signatures"] == [
        "predict_label",
        "classify_domain",
        "predict_label_uint8",
    ]
    assert "ScaleAndTranslate" in report["onnx"]["without_onnx"]["predict_image"]
    for signature in report["onnx"]["signatures"]:
        figures = report["onnx"]["parity"][signature]
        assert figures["images"] == 100  # the tiny target test split holds 100 images
        assert figures["decisions_agree"] == figures["images"]
        assert figures["max_abs_probability_difference"] <= 1e-5
    assert report["onnx"]["opset"] >= 13
    for package in ("tensorflow", "keras", "tf2onnx", "onnx"):
        assert report["versions"][package]


def test_onnx_runtime_answers_like_the_saved_model(exported_model, in_process, tiny_target) -> None:
    import onnxruntime

    images = to_unit_range(tiny_target.test.images[:16]).numpy()
    session = onnxruntime.InferenceSession(str(exported_model / "onnx" / "predict_label.onnx"))
    assert [i.name for i in session.get_inputs()] == ["images"]
    got = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {"images": images}),
            strict=True,
        )
    )
    want = in_process.signatures["predict_label"](images=tf.constant(images))
    np.testing.assert_array_equal(got["label"], want["label"].numpy())
    np.testing.assert_allclose(got["probabilities"], want["probabilities"].numpy(), atol=1e-5)


def test_tensorflow_serving_loads_it_and_gets_the_same_answers(
    exported_model, in_process, report, tiny_target
) -> None:
    """The serve MetaGraph, variables restored by its saver: TensorFlow Serving's load."""
    images = to_unit_range(tiny_target.test.images[:32]).numpy()
    model = MetaGraphModel(exported_model)
    try:
        for signature, outputs in SIGNATURE_SHAPES.items():
            got = model.run(signature, {"images": images}, sorted(outputs))
            want = in_process.signatures[signature](images=tf.constant(images))
            for name in outputs:
                np.testing.assert_allclose(got[name], want[name].numpy(), atol=1e-6)
    finally:
        model.close()
    parity = report["tf_serving_load"]["parity"]
    assert set(parity) == set(INPUTS) - {"serving_default"}
    for figures in parity.values():
        assert figures["decisions_agree"] == figures["images"] == 100
        assert figures["max_abs_probability_difference"] <= 1e-6


def test_a_model_tensorflow_serving_cannot_run_is_refused(variables_untracked_savedmodel) -> None:
    """Without its tf.Variables tracked, a Keras 3 model in a tf.Module answers through
    tf.saved_model.load but not through the saver: the check must say so."""
    path = variables_untracked_savedmodel
    pixels = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ExportError, match="Could not find variable"):
        metagraph_parity(tf.saved_model.load(str(path)), path, pixels)


def test_exported_accuracy_equals_the_run_summary(trained_run, report) -> None:
    summary = json.loads((trained_run / "summary.json").read_text())
    assert report["target_test_accuracy_exported"] == pytest.approx(
        summary["target_test_accuracy"], abs=1e-12
    )


def test_an_image_alone_equals_the_same_image_in_a_batch(in_process, tiny_target) -> None:
    batch = to_unit_range(tiny_target.test.images[:64])
    for name in ("predict_label", "classify_domain"):
        together = in_process.signatures[name](images=batch)["probabilities"].numpy()
        for index in (0, 17, 63):
            alone = in_process.signatures[name](images=batch[index : index + 1])["probabilities"]
            np.testing.assert_allclose(alone.numpy()[0], together[index], atol=1e-6)


def test_warmup_records_parse_with_the_official_messages(exported_model, in_process) -> None:
    from tensorflow_serving.apis import prediction_log_pb2

    path = exported_model / "assets.extra" / "tf_serving_warmup_requests"
    seen = set()
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "dann"
        signature = in_process.signatures[request.model_spec.signature_name]
        assert list(request.inputs) == ["images"]
        array = tf.make_ndarray(request.inputs["images"])
        shape, dtype = INPUTS[request.model_spec.signature_name]
        assert array.dtype == dtype.as_numpy_dtype and list(array.shape[1:]) == shape[1:]
        signature(images=tf.constant(array))  # the server could run it as is
        seen.add(request.model_spec.signature_name)
    assert seen == set(INPUTS) - {"serving_default"}


def test_models_config_parses_with_the_official_messages(exported_model) -> None:
    config = read_config(exported_model.parent.parent / "models.config")
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == (
        "dann",
        "/models/dann",
        "tensorflow",
    )


def _versions(model_root) -> list[str]:
    return sorted(p.name for p in model_root.iterdir())


@pytest.mark.slow
def test_next_free_version_and_no_overwrite_without_force(
    trained_run, exported_model, tmp_path
) -> None:
    # Version 1 is the shared export's copy (an export into an empty model directory is
    # version 1: test_export_lands_in_the_serving_layout).
    shutil.copytree(exported_model, tmp_path / "m" / "1")
    second = export_run(trained_run, tmp_path, "m").path
    assert second.name == "2"
    before = (second / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(ExportError, match="already exists; pass --force"):
        export_run(trained_run, tmp_path, "m", version=2)
    assert (second / "saved_model.pb").stat().st_mtime_ns == before
    replaced = export_run(trained_run, tmp_path, "m", version=2, force=True).path
    assert replaced == second and (second / "export.json").exists()
    assert (second / "saved_model.pb").stat().st_mtime_ns != before
    assert _versions(tmp_path / "m") == ["1", "2"]
    assert next_version(tmp_path / "m") == 3


def test_exchange_swaps_two_directories_in_one_step(tmp_path, monkeypatch) -> None:
    old, new = tmp_path / "2", tmp_path / ".staging-2-1"
    for directory, text in ((old, "old"), (new, "new")):
        directory.mkdir()
        (directory / "which").write_text(text)
    monkeypatch.setattr(os, "rename", None)  # no second way to get there
    assert exchange(new, old)
    assert (old / "which").read_text() == "new" and (new / "which").read_text() == "old"


def test_missing_run_leaves_nothing(tmp_path) -> None:
    with pytest.raises(ExportError, match="no such run directory"):
        export_run(tmp_path / "nope", tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_run_without_checkpoint_leaves_nothing(tiny_pair, tmp_path) -> None:
    from dann_serve.files import write_json
    from dann_serve.training.rundir import RunError

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = TrainConfig(source=tiny_pair[0], target=tiny_pair[1], steps=10, batch_size=32)
    write_json(run_dir / "config.json", {"options": vars(config)})
    with pytest.raises(RunError, match="no checkpoint"):
        export_run(run_dir, tmp_path / "models")
    assert _versions(tmp_path / "models" / "dann") == []


def test_failure_during_conversion_leaves_no_version(trained_run, tmp_path, monkeypatch) -> None:
    import dann_serve.export.publish as export_module

    def broken(function, path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half an onnx file")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(export_module, "convert_to_onnx", broken)
    with pytest.raises(RuntimeError, match="converter crashed"):
        export_run(trained_run, tmp_path, "m")
    assert _versions(tmp_path / "m") == []
    assert not (tmp_path / "models.config").exists()


def test_parity_holds_twins_to_the_onnx_bound_and_the_rest_to_exact_loading() -> None:
    """A twin signature (another graph to the same network) may differ by float32
    rounding; predict_label against itself, loaded as TF Serving loads it, may not;
    a single differing decision fails either."""
    from dann_serve.export.checks import SERVED_TOLERANCE, TWIN_TOLERANCE, agrees

    def figures(name: str, compared_with: str, difference: float, agree: int = 8) -> dict:
        return {
            name: {
                "images": 8,
                "compared_with": compared_with,
                "max_abs_probability_difference": difference,
                "decisions_agree": agree,
            }
        }

    rounding = 1.2e-6  # measured between predict_label_uint8 and predict_label
    assert SERVED_TOLERANCE < rounding <= TWIN_TOLERANCE
    assert agrees(figures("predict_label_uint8", "predict_label", rounding), SERVED_TOLERANCE)
    assert not agrees(figures("predict_label", "predict_label", rounding), SERVED_TOLERANCE)
    assert not agrees(
        figures("predict_label_uint8", "predict_label", 2 * TWIN_TOLERANCE), SERVED_TOLERANCE
    )
    assert not agrees(figures("predict_image", "predict_label", 0.0, agree=7), SERVED_TOLERANCE)

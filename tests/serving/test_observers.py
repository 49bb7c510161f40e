"""Every answered prediction is shown to the observers (the monitor, the capture), on
both protocols' shared path; an observer that fails never fails the request."""

from __future__ import annotations

import numpy as np
import pytest
from support.helpers import outputs, predict_request


@pytest.fixture()
def registry(served_registry):
    return served_registry


class Recorder:
    def __init__(self) -> None:
        self.seen = []

    def observe(self, served) -> None:
        self.seen.append(served)


class Broken:
    def observe(self, served) -> None:
        raise RuntimeError("observer broke")


def test_an_answered_prediction_reaches_every_observer(registry, caplog):
    from dann_serve.serving import observers, service

    first, second = Recorder(), Recorder()
    for observer in (first, Broken(), second):
        observers.add(observer)
    images = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    response = service.predict(registry, predict_request(images, "predict_label"))
    answered = outputs(response)["probabilities"]
    assert answered.shape == (3, 10)
    assert "observer broke" in caplog.text  # logged, and the request answered anyway
    for recorder in (first, second):
        [served] = recorder.seen
        assert (served.model, served.version, served.signature) == ("dann", 1, "predict_label")
        np.testing.assert_array_equal(served.inputs["images"], images)
        np.testing.assert_array_equal(served.outputs["probabilities"], answered)


def test_a_refused_request_is_shown_to_no_observer(registry):
    from dann_serve.serving import observers, service
    from dann_serve.serving.status import ServingError

    recorder = Recorder()
    observers.add(recorder)
    wrong = np.zeros((1, 28, 28, 3), np.float32)
    with pytest.raises(ServingError):
        service.predict(registry, predict_request(wrong, "predict_label"))
    assert recorder.seen == []

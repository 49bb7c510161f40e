import math

import pytest
import tensorflow as tf

from dann_serve.training.schedules import AdaptationSchedule, AnnealedLearningRate, progress


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.0, 0.0), (0.5, 2 / (1 + math.exp(-5)) - 1), (1.0, 2 / (1 + math.exp(-10)) - 1)],
)
def test_adaptation_schedule_matches_paper(p: float, expected: float) -> None:
    assert float(AdaptationSchedule()(p)) == pytest.approx(expected, abs=1e-6)


def test_adaptation_schedule_scales_and_gamma() -> None:
    assert float(AdaptationSchedule(gamma=10, max_value=0.5)(1.0)) == pytest.approx(
        0.5 * (2 / (1 + math.exp(-10)) - 1), abs=1e-6
    )
    assert float(AdaptationSchedule(max_value=0.0)(0.7)) == 0.0


@pytest.mark.parametrize("step, p", [(0, 0.0), (500, 0.5), (1000, 1.0), (1500, 1.0)])
def test_learning_rate_matches_paper(step: int, p: float) -> None:
    schedule = AnnealedLearningRate(0.01, total_steps=1000)
    expected = 0.01 / (1 + 10 * p) ** 0.75
    assert float(schedule(tf.constant(step))) == pytest.approx(expected, rel=1e-5)
    assert float(progress(step, 1000)) == pytest.approx(p)


def test_learning_rate_config_round_trips() -> None:
    schedule = AnnealedLearningRate(0.02, total_steps=77, alpha=5.0, beta=0.5)
    clone = AnnealedLearningRate(**schedule.get_config())
    assert float(clone(tf.constant(30))) == pytest.approx(float(schedule(tf.constant(30))))

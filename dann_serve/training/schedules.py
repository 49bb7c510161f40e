"""The two schedules of Ganin et al. (JMLR 2016), both driven by training progress p.

p goes from 0 at the first step to 1 at the last. Keeping the schedules as small
objects of p (not of the raw step) lets a resumed run land on exactly the same
point of both curves, and lets tests probe them at p = 0, 0.5 and 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class AdaptationSchedule:
    """lambda_p = max_value * (2 / (1 + exp(-gamma * p)) - 1).

    Starting at 0 keeps the noisy domain signal of a random feature extractor
    from swamping the label loss in the first steps; it rises to max_value.
    """

    gamma: float = 10.0
    max_value: float = 1.0

    def __call__(self, progress: tf.Tensor | float) -> tf.Tensor:
        p = tf.cast(progress, tf.float32)
        return self.max_value * (2.0 / (1.0 + tf.exp(-self.gamma * p)) - 1.0)


class AnnealedLearningRate(tf.keras.optimizers.schedules.LearningRateSchedule):
    """mu_p = mu0 / (1 + alpha * p) ** beta with p = step / total_steps (clipped to 1).

    The paper anneals the rate this way so that the adversarial game settles
    instead of oscillating once the domain loss is at full weight.
    """

    def __init__(
        self, initial: float, total_steps: int, alpha: float = 10.0, beta: float = 0.75
    ) -> None:
        self.initial = initial
        self.total_steps = total_steps
        self.alpha = alpha
        self.beta = beta

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        p = progress(step, self.total_steps)
        return self.initial / tf.pow(1.0 + self.alpha * p, self.beta)

    def get_config(self) -> dict:
        return {
            "initial": self.initial,
            "total_steps": self.total_steps,
            "alpha": self.alpha,
            "beta": self.beta,
        }


def progress(step: tf.Tensor | int, total_steps: int) -> tf.Tensor:
    """Training progress p in [0, 1] for a step counter."""
    p = tf.cast(step, tf.float32) / float(max(total_steps, 1))
    return tf.clip_by_value(p, 0.0, 1.0)

"""One contender's timed training run for ``bench/train_vs_adapt.py`` and
``bench/time_to_accuracy.py``, in a process of its own: a fresh model for ``--steps``
steps on the pair the parent saved, then its target and source test accuracy. A process
per run keeps each contender's Keras (Keras 3, or legacy tf-keras through
``TF_USE_LEGACY_KERAS``) and its thread pools apart from the others'.

With ``--eval-every K`` the run records instead its accuracy curve: target test accuracy
every K steps (and at the last) against the seconds of training so far, and with
``--stop-at ACCURACY`` it stops at the first evaluation that reaches it.

    python -m bench.train_contenders ours --data pair.npz --steps 300 --seed 0 --out run.json
    python -m bench.train_contenders ours --data pair.npz --steps 1000 --eval-every 20 \
        --stop-at 0.48 --out run.json
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from bench._common import argument_parser

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PRECISION = "BENCH_PRECISION"  # set in a child's environment: our run's --precision
# name -> (label, what its process adds to the environment)
CONTENDERS = {
    "ours": ("dann-serve Trainer (Keras 3)", {}),
    "ours-float32": ("same, --precision float32", {PRECISION: "float32"}),
    "adapt": ("ADAPT DANN, Keras 3", {}),
    "adapt-tf-keras": ("ADAPT DANN, tf-keras 2 (legacy)", {"TF_USE_LEGACY_KERAS": "1"}),
}


class StepClock:
    """Wall and CPU time of a training run, step by step."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.started = time.perf_counter()
        self.ticks: list[float] = []
        self.cpu: list[float] = []

    def tick(self) -> None:
        self.ticks.append(time.perf_counter())
        if len(self.ticks) == self.warmup:
            self.cpu.append(time.process_time())

    def figures(self, source_per_step: int) -> dict[str, float]:
        steps = len(self.ticks) - self.warmup
        window = self.ticks[-1] - self.ticks[self.warmup - 1]
        intervals = np.diff(self.ticks[self.warmup - 1 :])
        typical = float(np.median(intervals))
        stalls = intervals[intervals > 3 * typical]
        return {
            "timed_steps": steps,
            "first_steps_seconds": self.ticks[self.warmup - 1] - self.started,
            "window_seconds": window,
            "source_images_per_s": source_per_step * steps / window,
            "source_images_per_cpu_s": source_per_step
            * steps
            / (time.process_time() - self.cpu[0]),
            "step_ms_median": 1000 * typical,
            "step_ms_p90": 1000 * float(np.percentile(intervals, 90)),
            "stall_steps": len(stalls),
            "stall_seconds": float(stalls.sum() - len(stalls) * typical),
        }


def reached(accuracy: float, threshold: float) -> bool:
    """Whether ``accuracy`` is at least ``threshold``: the rule a run that stops on
    reaching it and the crossing its parent reads from the curve share. Both sides are
    counts of correct images over the same split size, so equal counts compare equal."""
    return accuracy >= threshold


class Curve:
    """Target test accuracy every ``every`` steps against the seconds of training so far.

    The clock starts (:meth:`start`) before the model is built, the data in memory and
    the libraries imported, so the seconds hold what a user waits for once training
    starts: building, tracing, the steps. The evaluations' own time is left out, so
    that evaluating more often does not make a contender look slower. Points are
    ``(seconds, step, accuracy)``.
    """

    def __init__(self, every: int, stop_at: float | None = None) -> None:
        self.every = every
        self.stop_at = stop_at
        self.started = time.perf_counter()
        self.evaluating = 0.0
        self.first_step_seconds: float | None = None
        self.points: list[tuple[float, int, float]] = []

    def start(self) -> None:
        self.started = time.perf_counter()

    def after_step(self, step: int, last: bool, evaluate: Callable[[], float]) -> bool:
        """Evaluate when due (``evaluate()`` gives the target accuracy); True: stop."""
        paused = time.perf_counter()
        if step == 1:
            self.first_step_seconds = paused - self.started
        if step % self.every and not last:
            return False
        accuracy = float(evaluate())
        self.points.append((paused - self.started - self.evaluating, step, accuracy))
        self.evaluating += time.perf_counter() - paused
        return self.stop_at is not None and reached(accuracy, self.stop_at)

    def figures(self) -> dict:
        seconds, step, accuracy = self.points[-1]
        return {
            "curve": self.points,
            "steps_run": step,
            "training_seconds": seconds,
            "evaluation_seconds": self.evaluating,
            "first_step_seconds": self.first_step_seconds,
            "target_accuracy": accuracy,
        }


def load_pair(path: Path):
    from dann_serve.data import Domain, Split

    data = np.load(path)
    source = Domain("fonts", Split(data["xs"], data["ys"]), Split(data["xs_test"], data["ys_test"]))
    target = Domain(
        "digits", Split(data["xt"], data["yt"]), Split(data["xt_test"], data["yt_test"])
    )
    return source, target


def run_ours(
    source, target, steps: int, batch_size: int, seed: int, warmup: int, curve: Curve | None
) -> dict:
    from dann_serve.config import TrainConfig
    from dann_serve.training.evaluation import accuracy, pair_accuracies
    from dann_serve.training.step import Trainer

    clock = StepClock(warmup)
    precision = os.environ.get(PRECISION, "auto")  # the default: as `dann-serve train`
    config = TrainConfig(steps=steps, batch_size=batch_size, seed=seed, precision=precision)
    if curve:
        curve.start()
    trainer = Trainer(config, source, target)

    def evaluate() -> float:  # the averaged weights, as the CLI reports and exports them
        return accuracy(trainer.averaged, target.test)

    for step in range(1, steps + 1):
        trainer.train_step()
        clock.tick()
        if curve and curve.after_step(step, step == steps, evaluate):
            break
    if curve:
        return curve.figures()
    figures = clock.figures(batch_size // 2)
    averaged = pair_accuracies(trainer.averaged, source.test, target.test)
    raw = pair_accuracies(trainer.model, source.test, target.test)
    return {
        **figures,
        "target_accuracy": averaged["target_accuracy"],
        "source_accuracy": averaged["source_accuracy"],
        "target_accuracy_raw": raw["target_accuracy"],
    }


def _tf_keras_copy(layers, tfk):
    """The same layers in tf-keras, weights copied; preprocessing wrapped in Lambda."""
    import keras

    copies = []
    for layer in layers:
        if isinstance(layer, keras.layers.Conv2D):
            copy = tfk.layers.Conv2D(
                layer.filters, layer.kernel_size, padding=layer.padding, use_bias=layer.use_bias
            )
        elif isinstance(layer, keras.layers.Dense):
            copy = tfk.layers.Dense(
                layer.units, activation=keras.activations.serialize(layer.activation)
            )
        elif isinstance(layer, keras.layers.ReLU):
            copy = tfk.layers.ReLU()
        elif isinstance(layer, keras.layers.MaxPool2D):
            copy = tfk.layers.MaxPool2D(layer.pool_size, layer.strides, padding=layer.padding)
        elif isinstance(layer, keras.layers.Flatten):
            copy = tfk.layers.Flatten()
        elif isinstance(layer, keras.layers.Dropout):
            copy = tfk.layers.Dropout(layer.rate)
        elif not layer.weights:  # Grayscale, DarkBackground, PerImageStandardization
            copy = tfk.layers.Lambda(layer.call)
        else:
            raise SystemExit(f"no tf-keras copy for {layer.__class__.__name__}")
        copies.append((layer, copy))
    return copies


def adapt_networks(config, legacy: bool):
    """Encoder, task and discriminator for ADAPT, starting from our seeded weights."""
    import keras

    from dann_serve.model.networks import build_model

    keras.utils.set_random_seed(config.seed)  # as Trainer does before build_model
    ours = build_model(config)
    first_domain_layer = ours.domain_head.layers[0]
    if not legacy:
        discriminator = keras.Sequential(
            [
                keras.layers.Dense(first_domain_layer.units, activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ],
            name="discriminator",
        )
        discriminator.build(ours.features.compute_output_shape((None, 32, 32, 3)))
        discriminator.layers[0].set_weights(first_domain_layer.get_weights())
        return ours.features, ours.label_head, discriminator

    import tf_keras as tfk

    def rebuild(sequential, input_shape):
        pairs = _tf_keras_copy(sequential.layers, tfk)
        model = tfk.Sequential([tfk.layers.InputLayer(input_shape), *(c for _, c in pairs)])
        for original, copy in pairs:
            if original.weights:
                copy.set_weights(original.get_weights())
        return model

    features = ours.features.compute_output_shape((None, 32, 32, 3))[1:]
    encoder = rebuild(ours.features, (32, 32, 3))
    task = rebuild(ours.label_head, features)
    discriminator = tfk.Sequential(
        [
            tfk.layers.InputLayer(features),
            tfk.layers.Dense(first_domain_layer.units, activation="relu"),
            tfk.layers.Dense(1, activation="sigmoid"),
        ]
    )
    discriminator.layers[0].set_weights(first_domain_layer.get_weights())
    return encoder, task, discriminator


def adapt_dann(networks: tuple, config, seed: int, keras):
    """ADAPT's DANN on the three networks, compiled with our optimiser and schedule."""
    import tensorflow as tf
    from adapt.feature_based import DANN

    from dann_serve.training.schedules import AnnealedLearningRate

    def sgd():  # with TF_USE_LEGACY_KERAS=1 our schedule subclasses tf-keras's class
        rate = AnnealedLearningRate(
            config.learning_rate, config.steps, config.lr_alpha, config.lr_beta
        )
        return keras.optimizers.SGD(rate, momentum=config.momentum)

    model = DANN(
        *networks,
        lambda_=tf.Variable(0.0),
        optimizer_enc=sgd(),
        optimizer_disc=sgd(),
        copy=False,
        random_state=seed,
        verbose=0,
    )
    # compile ourselves: ADAPT's own compile() rebuilds the optimiser from its config,
    # which turns a custom learning-rate schedule into a dict (and fails).
    model.pretrain_ = False
    model.compile(optimizer=sgd(), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return model


def adapt_accuracy(model, split) -> float:
    logits = model.predict(split.images.astype(np.float32) / 255.0, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == split.labels))


def run_adapt(
    source, target, steps: int, batch_size: int, seed: int, warmup: int, curve: Curve | None
) -> dict:
    legacy = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    if legacy:
        import tf_keras as keras
    else:
        import keras
    import adapt.feature_based  # noqa: F401  (imported before a curve's clock starts)
    from adapt.utils import UpdateLambda

    from dann_serve.config import TrainConfig

    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    config = TrainConfig(steps=steps, batch_size=batch_size, seed=seed)
    clock = StepClock(warmup)
    if curve:
        curve.start()
    model = adapt_dann(adapt_networks(config, legacy), config, seed, keras)
    evaluate = partial(adapt_accuracy, model, target.test)

    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.tick()
            step = len(clock.ticks)
            stop = bool(curve) and curve.after_step(step, step == steps, evaluate)
            if stop or step >= steps:
                self.model.stop_training = True

    xs = source.train.images.astype(np.float32) / 255.0
    ys = np.eye(10, dtype=np.float32)[source.train.labels]
    xt = target.train.images.astype(np.float32) / 255.0
    lambda_schedule = UpdateLambda(0.0, config.lambda_max, steps, config.gamma)
    model.fit(
        xs,
        ys,
        Xt=xt,
        epochs=10**6,
        batch_size=batch_size // 2,
        verbose=0,
        callbacks=[lambda_schedule, Stop()],
    )
    ran = int(model.optimizer.iterations.numpy())
    if curve:
        if ran != curve.points[-1][1]:
            raise SystemExit(f"ADAPT ran {ran} steps, its curve ends at {curve.points[-1][1]}")
        return {**curve.figures(), "final_lambda": float(model.lambda_.numpy())}
    if len(clock.ticks) != steps or ran != steps:
        raise SystemExit(f"ADAPT ran {len(clock.ticks)} steps, not {steps}")
    return {
        **clock.figures(batch_size // 2),
        "target_accuracy": adapt_accuracy(model, target.test),
        "source_accuracy": adapt_accuracy(model, source.test),
        "final_lambda": float(model.lambda_.numpy()),
    }


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("contender", choices=list(CONTENDERS))
    parser.add_argument("--data", type=Path, required=True, help="the pair, as the parent saved it")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=128, help="source + target images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of the timing")
    parser.add_argument("--out", type=Path, required=True, help="where the figures go (JSON)")
    parser.add_argument(
        "--eval-every", type=int, default=0, help="record the accuracy curve every N steps"
    )
    parser.add_argument(
        "--stop-at", type=float, default=None, help="with --eval-every: stop on reaching it"
    )
    args = parser.parse_args()
    if args.eval_every < 0:
        parser.error("--eval-every must be 0 (no curve) or more")
    if args.stop_at is not None and not args.eval_every:
        parser.error("--stop-at needs --eval-every")
    source, target = load_pair(args.data)
    curve = Curve(args.eval_every, args.stop_at) if args.eval_every else None
    run = run_ours if args.contender.startswith("ours") else run_adapt
    figures = run(source, target, args.steps, args.batch_size, args.seed, args.warmup, curve)
    args.out.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()

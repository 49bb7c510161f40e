"""The DANN network: feature extractor, label head, and a domain head behind a GRL.

Two architectures from Ganin et al. (JMLR 2016, section 5.2.2): ``mnist`` for small
grey-ish digits and ``svhn`` for the larger house-number style network. Input is
always float32 ``[N, 32, 32, 3]`` in ``[0, 1]``; the input normalisation
(:mod:`dann_serve.model.normalization`) happens inside the graph so that training,
export and every client share it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dann_client.contract import INPUT_SHAPE, NUM_CLASSES, NUM_DOMAINS
from dann_serve.config import ARCHITECTURES, TrainConfig
from dann_serve.model.layers import GradientReversal, MultilinearConditioning
from dann_serve.model.normalization import DarkBackground, Grayscale, PerImageStandardization


def _conv_block(filters: int, pool: tuple[int, int] | None, batch_norm: bool, padding: str) -> list:
    layers: list = [keras.layers.Conv2D(filters, 5, padding=padding, use_bias=not batch_norm)]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.ReLU())
    if pool is not None:
        size, stride = pool
        layers.append(keras.layers.MaxPool2D(size, strides=stride, padding=padding))
    return layers


def _dense_stack(units: tuple[int, ...], outputs: int, dropout: float, name: str):
    layers: list = []
    for width in units:
        layers += [keras.layers.Dense(width, activation="relu")]
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    # The logits in float32 under any policy: their softmax and losses are, and bfloat16's
    # 8-bit mantissa would round the gradient that starts the backward pass of every step.
    layers.append(keras.layers.Dense(outputs, dtype="float32"))
    return keras.Sequential(layers, name=name)


def feature_extractor(
    arch: str, batch_norm: bool = False, grayscale: bool = True, dark_background: bool = True
) -> keras.Sequential:
    """G_f: the shared convolutional features both heads read."""
    if arch == "mnist":  # 32 -> 28 -> 14 -> 10 -> 5: 5x5x48 = 1,200 features
        blocks = _conv_block(32, (2, 2), batch_norm, "valid") + _conv_block(
            48, (2, 2), batch_norm, "valid"
        )
    elif arch == "svhn":  # 32 -> 16 -> 8, then 128 maps: 8x8x128 = 8,192 features
        blocks = (
            _conv_block(64, (3, 2), batch_norm, "same")
            + _conv_block(64, (3, 2), batch_norm, "same")
            + _conv_block(128, None, batch_norm, "same")
        )
    else:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {ARCHITECTURES}")
    # The input normalisation measures brightness and spread: float32 under any policy.
    front = [Grayscale(dtype="float32")] if grayscale else []
    if dark_background:
        front.append(DarkBackground(dtype="float32"))
    front.append(PerImageStandardization(dtype="float32"))
    return keras.Sequential([*front, *blocks, keras.layers.Flatten()], name="features")


def label_head(arch: str) -> keras.Sequential:
    """G_y: digit logits from features (source images only during training)."""
    units = (100, 100) if arch == "mnist" else (3072, 2048)
    return _dense_stack(
        units, NUM_CLASSES, dropout=0.0 if arch == "mnist" else 0.5, name="label_head"
    )


def domain_head(arch: str, conditioned_on: keras.Sequential | None = None) -> keras.Sequential:
    """G_d: source-vs-target logits (column 0 = source, 1 = target) from the features,
    or (CDAN) from the features conditioned on ``conditioned_on``'s class predictions."""
    units = (100,) if arch == "mnist" else (1024, 1024)
    stack = _dense_stack(units, NUM_DOMAINS, dropout=0.0, name="domain_head")
    if conditioned_on is None:
        return stack
    return keras.Sequential(
        [MultilinearConditioning(conditioned_on, name="conditioning"), *stack.layers],
        name="domain_head",
    )


class DANN(keras.Model):
    """Features -> {label head, GRL -> domain head}.

    ``call`` returns both logits so that one forward pass feeds both losses; the
    export module wraps the same sub-models into the two serving signatures.
    """

    def __init__(
        self,
        arch: str = "mnist",
        batch_norm: bool = False,
        grayscale: bool = True,
        dark_background: bool = True,
        conditional: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.arch = arch
        self.batch_norm = batch_norm
        self.grayscale = grayscale
        self.dark_background = dark_background
        self.conditional = conditional
        self.features = feature_extractor(arch, batch_norm, grayscale, dark_background)
        self.label_head = label_head(arch)
        self.reversal = GradientReversal(name="gradient_reversal")
        self.domain_head = domain_head(arch, self.label_head if conditional else None)
        self.build((None, *INPUT_SHAPE))

    def build(self, input_shape: tuple) -> None:
        self.features.build(input_shape)
        feature_shape = self.features.compute_output_shape(input_shape)
        self.label_head.build(feature_shape)
        self.domain_head.build(feature_shape)
        super().build(input_shape)

    def call(self, images: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        features = self.features(images, training=training)
        label_logits = self.label_head(features, training=training)
        domain_logits = self.domain_head(
            self.reversal(features, training=training), training=training
        )
        return label_logits, domain_logits

    def get_config(self) -> dict:
        return {
            "arch": self.arch,
            "batch_norm": self.batch_norm,
            "grayscale": self.grayscale,
            "dark_background": self.dark_background,
            "conditional": self.conditional,
        }


def build_model(config: TrainConfig, policy: str = "float32", conditional: bool = False) -> DANN:
    """The network a training configuration describes, computing in ``policy``, its
    domain head reading the features times the class predictions if ``conditional``
    (what the run's adaptation method asks for: the training package builds a run's
    network from its method, :func:`dann_serve.training.evaluation.build_network`).

    Only the model that trains takes the run's ``precision``; its variables are float32
    under any policy, so the weight average, the checkpoints, evaluation and export
    (built here with the float32 default) read them unchanged.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return DANN(
            config.arch,
            batch_norm=config.batch_norm,
            grayscale=config.grayscale,
            dark_background=config.dark_background,
            conditional=conditional,
        )
    finally:
        keras.config.set_dtype_policy(previous)

"""Label-free criteria: how good is a trained run on its target, without target labels?

A user adapts because the target has no labels, so choosing between candidate runs
(source-only among them) must rest on what is known without them: the labelled
source, the unlabelled target training images, and the runs themselves. Each
criterion here maps a run to one number, higher is better:

- ``dev``: deep embedded validation (You et al., ICML 2019). The source test loss,
  each image weighted by how target-like its features are (a density ratio from a
  logistic domain classifier on the run's own features), with the control variate
  of the paper to tame the weights' variance. It estimates the target loss when the
  features carry the shift; negated so that higher is better.
- ``snd``: soft neighbourhood density (Saito et al., ICCV 2021). The entropy of each
  target image's soft neighbourhood in the space of the run's predictions: high when
  target images form dense clusters the classifier agrees with.
- ``entropy``: minus the mean entropy of the target predictions, a common baseline.
- ``reverse``: reverse validation (:mod:`reverse_validation`), much the dearest.

Beside them, :func:`class_shift` ranks nothing but guards the choice: how far the
run's predicted class shares on the target stand from the source's class shares. A
run that is confidently wrong on a far target, which entropy ranks first, piles the
target onto a few classes; ``train --select`` passes over a candidate whose class
shares move further from the source's than source-only's do.

:func:`domain_separability` measures the pair rather than ranking runs:
how well a linear classifier tells the two domains apart in a run's features (the
proxy A-distance of Ben-David et al., as Ganin et al. use it). Read on the source-only
run, it says whether the domains start close; ``train --select`` picks its candidates
by it.

Every criterion reads the target's *training* images only, never a label of the
target, and at most ``SAMPLE`` images of each split so that scoring stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dann_serve.config import CHEAP_CRITERIA, CLASS_SHIFT, CRITERIA
from dann_serve.data import Domain, Split
from dann_serve.data.pipeline import ordered_batches, to_unit_range
from dann_serve.experiments.reverse_validation import reverse_validation
from dann_serve.model.networks import DANN
from dann_serve.training.evaluation import restore_model
from dann_serve.training.loop import load_pair
from dann_serve.training.rundir import load_config

SAMPLE = 2000  # images of each split a criterion reads
MEASURES = (*CRITERIA, CLASS_SHIFT)
SND_TEMPERATURE = 0.05  # Saito et al.'s temperature for the neighbourhood softmax


@dataclass(frozen=True)
class Readout:
    """A model's features and label logits over (a sample of) one split."""

    features: np.ndarray
    logits: np.ndarray
    labels: np.ndarray | None  # None: not to be read (the target's)


def sample(split: Split, size: int = SAMPLE, seed: int = 0) -> Split:
    """At most ``size`` images of ``split``, drawn once without replacement."""
    if len(split) <= size:
        return split
    chosen = np.sort(np.random.default_rng(seed).choice(len(split), size, replace=False))
    return Split(split.images[chosen], split.labels[chosen])


def read_out(model: DANN, split: Split, keep_labels: bool) -> Readout:
    """Features and logits of every image of ``split``, in order."""
    features, logits = [], []
    for images, _ in ordered_batches(split):
        batch_features = model.features(to_unit_range(images), training=False)
        features.append(batch_features.numpy())
        logits.append(model.label_head(batch_features, training=False).numpy())
    return Readout(
        np.concatenate(features),
        np.concatenate(logits),
        np.asarray(split.labels) if keep_labels else None,
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _entropy(probabilities: np.ndarray) -> np.ndarray:
    return -np.sum(probabilities * np.log(probabilities + 1e-12), axis=1)


def entropy_score(target: Readout) -> float:
    """Minus the mean entropy (nats) of the target predictions."""
    return -float(np.mean(_entropy(_softmax(target.logits))))


def class_shift(source_labels: np.ndarray, target: Readout) -> float:
    """Total variation distance (0 to 1) between the shares of the classes the model
    predicts for the target images and the source's label shares."""
    classes = target.logits.shape[1]
    predicted = np.bincount(target.logits.argmax(axis=1), minlength=classes)
    labelled = np.bincount(source_labels, minlength=classes)
    return 0.5 * float(np.abs(predicted / predicted.sum() - labelled / labelled.sum()).sum())


def snd_score(target: Readout, temperature: float = SND_TEMPERATURE) -> float:
    """Mean entropy of each target image's softmax over its similarities to the others."""
    probabilities = _softmax(target.logits)
    unit = probabilities / np.linalg.norm(probabilities, axis=1, keepdims=True)
    similarity = unit @ unit.T / temperature
    np.fill_diagonal(similarity, -np.inf)
    return float(np.mean(_entropy(_softmax(similarity))))


def _domain_classifier(features: np.ndarray, domains: np.ndarray):
    """A logistic regression of the domain (0 source, 1 target) on standardised
    features, fitted: what both deep embedded validation and :func:`separability`
    read a run's features with."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    return classifier.fit(features, domains)


def _with_domains(source: Readout, target: Readout) -> tuple[np.ndarray, np.ndarray]:
    """Both samples' features, stacked, and their domains (0 source, 1 target)."""
    features = np.concatenate([source.features, target.features])
    return features, np.r_[np.zeros(len(source.features)), np.ones(len(target.features))]


def dev_score(source_train: Readout, target: Readout, source_test: Readout) -> float:
    """Minus the deep-embedded-validation risk of the source test split."""
    classifier = _domain_classifier(*_with_domains(source_train, target))
    target_probability = classifier.predict_proba(source_test.features)[:, 1]
    target_probability = np.clip(target_probability, 1e-4, 1 - 1e-4)
    weights = (
        target_probability
        / (1 - target_probability)
        * (len(source_train.features) / len(target.features))
    )
    probabilities = _softmax(source_test.logits)
    assert source_test.labels is not None  # the source's labels are read
    rows = np.arange(len(source_test.labels))
    losses = -np.log(probabilities[rows, source_test.labels] + 1e-12)
    weighted = weights * losses
    variance = np.var(weights, ddof=1)
    eta = -np.cov(weighted, weights)[0, 1] / variance if variance > 0 else 0.0
    return -float(np.mean(weighted) + eta * np.mean(weights) - eta)


def separability(source: Readout, target: Readout, folds: int = 2) -> float:
    """Balanced accuracy of a logistic domain classifier on held-out features, 0.5 when
    the domains cannot be told apart and 1.0 when they separate; mean over ``folds``
    splits, each image held out once. Held out, because a classifier scored on its own
    training images separates almost any two samples of features this wide."""
    features, domains = _with_domains(source, target)
    fold_of = np.random.default_rng(0).permutation(len(features)) % folds
    accuracies = []
    for fold in range(folds):
        train, held_out = fold_of != fold, fold_of == fold
        classifier = _domain_classifier(features[train], domains[train])
        predicted = classifier.predict(features[held_out])
        truth = domains[held_out]
        accuracies.append(np.mean([np.mean(predicted[truth == d] == d) for d in (0, 1)]))
    return float(np.mean(accuracies))


def domain_separability(run_dir: Path) -> float:
    """:func:`separability` of the run in ``run_dir``, on its features of (a sample of)
    the source's and the target's training images; no label is read."""
    run_dir = Path(run_dir)
    model = restore_model(run_dir)
    source, target = load_pair(load_config(run_dir))
    return separability(
        read_out(model, sample(source.train), keep_labels=False),
        read_out(model, sample(target.train), keep_labels=False),
    )


def score_run(run_dir: Path, criteria: tuple[str, ...] = CHEAP_CRITERIA) -> dict:
    """Each named criterion of the run in ``run_dir`` (higher is better), or the
    guard's :data:`CLASS_SHIFT` (lower is closer to the source)."""
    unknown = sorted(set(criteria) - set(MEASURES))
    if unknown:
        raise ValueError(f"unknown criterion {unknown[0]!r}: choose from {', '.join(CRITERIA)}")
    run_dir = Path(run_dir)
    model = restore_model(run_dir)
    source, target = load_pair(load_config(run_dir))
    return score_model(model, source, target, criteria, run_dir)


def score_model(
    model: DANN,
    source: Domain,
    target: Domain,
    criteria: tuple[str, ...],
    run_dir: Path | None = None,
) -> dict:
    """The criteria of ``model`` trained from ``source`` to ``target``; the target's
    training images are read, its labels never."""
    target_readout = read_out(model, sample(target.train), keep_labels=False)
    scores = {}
    if "dev" in criteria:
        scores["dev"] = dev_score(
            read_out(model, sample(source.train), keep_labels=True),
            target_readout,
            read_out(model, sample(source.test), keep_labels=True),
        )
    if "snd" in criteria:
        scores["snd"] = snd_score(target_readout)
    if "entropy" in criteria:
        scores["entropy"] = entropy_score(target_readout)
    if CLASS_SHIFT in criteria:
        scores[CLASS_SHIFT] = class_shift(np.asarray(source.train.labels), target_readout)
    if "reverse" in criteria and run_dir is not None:
        scores["reverse"] = reverse_validation(run_dir)
    return scores

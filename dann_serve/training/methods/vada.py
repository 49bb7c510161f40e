"""VADA (Shu et al., ICLR 2018, "A DIRT-T approach to unsupervised domain
adaptation"): DANN, and a classifier whose decision boundaries keep out of the
target's dense regions.

Aligning the features does not stop the label head from drawing a boundary through
a cluster of target images. VADA adds the cluster assumption's two penalties:

- conditional entropy of the target predictions: every run has it already, as the
  first half of the information term (``--information-weight``, on by default,
  ramped like the reversal; :func:`dann_serve.training.losses.information_loss`),
  whose second half, the spread of the batch's predictions, keeps the entropy from
  collapsing the target onto one class;
- virtual adversarial training (VAT, Miyato et al. 2018) on both domains: the
  prediction must not move when the image moves by ``EPSILON`` in the direction
  that moves it most. That direction is found by one power-iteration step from a
  random one: the gradient, with respect to a perturbation of norm ``XI``, of
  ``KL(p(x) || p(x + perturbation))``; the loss is ``KL(p(x) || p(x + r_adv))``
  with ``p(x)`` held fixed (not trained through) and ``r_adv`` that gradient
  scaled to norm ``EPSILON``. A boundary through a dense region has images within
  ``EPSILON`` of it whose prediction flips: the term pushes it away.

Where the numbers come from (the authors' code, ``run_dirtt.py`` and
``codebase/models``: source cross-entropy 1, domain 1e-2, source VAT 1, target
entropy and target VAT 1e-2 each, radius 3.5, ``xi`` 1e-6; images in ``[-1, 1]``,
and, with their ``--inorm``, instance-normalised by the network's first layer):

- ``SOURCE_WEIGHT = 1``: source VAT weighs as much as the source cross-entropy, as
  there;
- ``TARGET_WEIGHT = 1``: target VAT weighs as much as the target entropy, as there
  (both 1e-2). Our adaptation terms are theirs times 100 together (a reversal of
  strength 1 and an information weight of 1 against their 1e-2), which keeps their
  ratio to each other and to the domain term; unlike the entropy, VAT is not
  ramped, as it is not there: it asks for smoothness, not for confidence, so a
  random classifier's early guesses are not what it reinforces;
- ``EPSILON = 1.5``: their 3.5 on our scale. Our network, like theirs, removes
  each image's brightness and contrast first (per-image standardisation), so what a
  perturbation does is its norm against the image's own spread. Theirs perturbs
  MNIST digits in ``[-1, 1]``, whose spread (the norm of an image minus its mean,
  32x32x3) is about 2 x 14.4: 3.5 is 12% of it. Our network turns colour to grey
  first, which keeps 0.67 of an RGB perturbation's norm (the norm of the luminance
  weights) and a grey digit's spread of 8.0 (USPS; 8.3 MNIST, median of 2,000):
  0.67 x 1.5 = 1.0 is 12.5% of it;
- ``XI = 0.1``, not their 1e-6: the KL is flat to first order, and against a
  confident prediction so flat that at 1e-6 (2e-8 a pixel, under float32's
  resolution at 0.5) its gradient is rounding. Against the exact product of the
  KL's Hessian with the same random direction (forward- then reverse-mode), on
  128 images of a trained DANN run (usps -> mnist-texture, step 1500), the
  direction's median cosine is 0.23 on target images and 0.01 on source ones at
  1e-6, and 0.996 and 0.95 at 0.1, whose worst tenth also agrees better than at
  1e-3 or 1e-2 (0.82 against 0.23 and 0.62 on the target); 0.1 is still a
  fifteenth of ``EPSILON``, where the network is nearly linear around the image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dann_serve.training.methods.base import AdaptationMethod, Batch
from dann_serve.training.methods.registry import register

if TYPE_CHECKING:
    import tensorflow as tf

EPSILON = 1.5
XI = 0.1
SOURCE_WEIGHT = 1.0
TARGET_WEIGHT = 1.0
NOISE_STREAM = 0x5641  # folded into the step's seed: VAT's draws, apart from others


@register
class VirtualAdversarialDomainAdaptation(AdaptationMethod):
    name = "vada"
    label = "VADA"
    description = (
        "VADA (Shu et al. 2018): DANN, plus virtual adversarial training on both domains, "
        "for far targets"
    )

    def extra_loss(self, batch: Batch) -> tf.Tensor:
        import tensorflow as tf

        if batch.images is None or batch.classify is None or batch.seed is None:
            raise ValueError("vada needs the step's images, classifier and seed in its Batch")
        seed = tf.random.experimental.stateless_fold_in(batch.seed, NOISE_STREAM)
        divergences = virtual_adversarial_divergences(
            batch.classify, batch.images, batch.label_logits, seed
        )
        n = batch.source_count
        source = batch.replicas.mean(divergences[:n])
        target = batch.replicas.mean(divergences[n:])
        return SOURCE_WEIGHT * source + TARGET_WEIGHT * target


def virtual_adversarial_divergences(
    classify: Callable[[tf.Tensor], tf.Tensor],
    images: tf.Tensor,
    logits: tf.Tensor,
    seed: tf.Tensor,
    epsilon: float = EPSILON,
    xi: float = XI,
) -> tf.Tensor:
    """Per image, ``KL(p(x) || p(x + r_adv))``: trained through the perturbed
    prediction only, ``logits`` (``p(x)``, from ``classify(images)``) held fixed."""
    import tensorflow as tf

    clean = tf.stop_gradient(logits)
    r_adv = adversarial_perturbation(classify, images, clean, seed, epsilon, xi)
    return divergences(clean, classify(images + r_adv))


def adversarial_perturbation(
    classify: Callable[[tf.Tensor], tf.Tensor],
    images: tf.Tensor,
    logits: tf.Tensor,
    seed: tf.Tensor,
    epsilon: float = EPSILON,
    xi: float = XI,
) -> tf.Tensor:
    """Per image, the perturbation of L2 norm ``epsilon`` that one power-iteration
    step from a random direction (drawn from ``seed``) finds to move ``classify``'s
    prediction most away from ``logits``; a constant, not trained through."""
    import tensorflow as tf

    noise = tf.random.stateless_normal(tf.shape(images), seed=seed, dtype=images.dtype)
    start = xi * _unit(noise)
    with tf.GradientTape() as tape:
        tape.watch(start)
        divergence = tf.reduce_sum(divergences(logits, classify(images + start)))
    direction = tape.gradient(divergence, start, unconnected_gradients="zero")
    return tf.stop_gradient(epsilon * _unit(direction))


def divergences(reference: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per row, ``KL(softmax(reference) || softmax(logits))`` in nats."""
    import tensorflow as tf

    log_p = tf.nn.log_softmax(reference)
    return tf.reduce_sum(tf.exp(log_p) * (log_p - tf.nn.log_softmax(logits)), axis=-1)


def _unit(perturbations: tf.Tensor) -> tf.Tensor:
    """Each image's perturbation scaled to L2 norm 1 (0 stays 0). Scaled to a largest
    value of 1 first: a gradient of norm under 1e-6, as the power-iteration step gives,
    would otherwise fall under the normaliser's floor and come out shorter."""
    import tensorflow as tf

    largest = tf.reduce_max(tf.abs(perturbations), axis=[1, 2, 3], keepdims=True)
    tiny = tf.experimental.numpy.finfo(perturbations.dtype.as_numpy_dtype).tiny
    return tf.math.l2_normalize(perturbations / (largest + tiny), axis=[1, 2, 3])

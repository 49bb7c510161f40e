"""DANN (Ganin et al., JMLR 2016): features a domain classifier cannot tell apart.

The domain head learns to tell source from target features; the gradient reversal
between it and the features turns that into features it cannot tell apart, on which
the label head, trained on the source, carries over to the target. Every hook is
the base class's: this is the method the others vary.
"""

from __future__ import annotations

from dann_serve.training.methods.base import AdaptationMethod
from dann_serve.training.methods.registry import register


@register
class DomainAdversarial(AdaptationMethod):
    name = "dann"
    label = "DANN"
    description = "DANN (Ganin et al. 2016): a domain head behind a gradient reversal"

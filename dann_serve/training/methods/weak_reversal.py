"""DANN with a weak reversal, for domains that start close.

When a linear classifier barely tells the domains' source-only features apart, the
full reversal mostly shakes features that need no moving (``docs/RESULTS.md``); a
tenth of it still pulls the remaining gap shut. ``--lambda-max`` below the cap
weakens it further.
"""

from __future__ import annotations

from dann_serve.training.methods.base import AdaptationMethod
from dann_serve.training.methods.registry import register

WEAK_LAMBDA = 0.1


@register
class WeakReversal(AdaptationMethod):
    name = "dann-weak"
    label = "DANN (weak reversal)"
    description = (
        f"DANN with the reversal capped at lambda {WEAK_LAMBDA:g}, for domains that start close"
    )

    def reversal_strength(self, lambda_max: float) -> float:
        return min(lambda_max, WEAK_LAMBDA)

"""Source-only: no adaptation, the baseline every method is measured against.

The same network, data stream, batch composition, optimiser and schedules as DANN,
with the reversal held at 0: a gain over it is the adaptation's and nothing else's.
The domain head still trains, so its accuracy reads how far apart the domains'
features are when nothing aligns them.
"""

from __future__ import annotations

from dann_serve.training.methods.base import AdaptationMethod
from dann_serve.training.methods.registry import register


@register
class SourceOnly(AdaptationMethod):
    name = "source-only"
    description = "no adaptation (lambda = 0): the baseline"

    def reversal_strength(self, lambda_max: float) -> float:
        return 0.0

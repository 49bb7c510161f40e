"""Training: source and target splits in, a run directory out.

Owns the schedules of the paper (``schedules``), random shifts (``augment``), the
terms of the loss (``losses``), the adaptation methods, one module each and registered
by name (``methods``), the training step (``step``) and loop (``loop``), the run
directory on disk (``rundir``: config, metrics, checkpoints, summary), its curves
(``plots``) and accuracy of a model or a saved run (``evaluation``).

May import: :mod:`dann_serve.data`, :mod:`dann_serve.model`, the top-level
``config``, ``files`` and ``runtime``, :mod:`dann_client.contract`. Nothing of export,
serving or experiments.
"""

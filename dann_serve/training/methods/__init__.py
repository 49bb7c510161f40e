"""Adaptation methods, one module each, registered by name (``--method NAME``).

:mod:`base` says what a method decides and the hooks the training step calls;
:mod:`registry` keeps them by name. A method's module defines one subclass of
:class:`AdaptationMethod` decorated with :func:`register`; its name below (one line)
makes ``--method`` offer it. ``docs/EXTENDING.md`` walks through adding one.

May import: what :mod:`dann_serve.training` may, and its ``losses``; TensorFlow only
inside the hooks, since ``dann-serve --help`` and the report import every method.
"""

from __future__ import annotations

from importlib import import_module

from dann_serve.training.methods.base import AdaptationMethod, Batch
from dann_serve.training.methods.registry import (
    get_method,
    method_label,
    method_names,
    register,
    unregister,
)

# In the order --method and --help list them.
MODULES = (
    "source_only",
    "dann",
    "cdan",
    "weak_reversal",
    "class_weighted",
    "mcc",
    "vada",
    "textured_source",
)
for _module in MODULES:
    import_module(f"{__name__}.{_module}")

__all__ = [
    "AdaptationMethod",
    "Batch",
    "get_method",
    "method_label",
    "method_names",
    "register",
    "unregister",
]

"""The adaptation methods by name: what ``--method`` offers and ``config.json`` names."""

from __future__ import annotations

from typing import TypeVar

from dann_serve.training.methods.base import AdaptationMethod

Method = TypeVar("Method", bound=type[AdaptationMethod])

_METHODS: dict[str, type[AdaptationMethod]] = {}


def register(method: Method) -> Method:
    """Offer ``method`` under its name (use as a class decorator). A name another
    method holds already is refused: a run's ``config.json`` must name one method."""
    if not method.name or not method.description:
        raise ValueError(f"{method.__name__}: an adaptation method needs a name and a description")
    if _METHODS.get(method.name, method) is not method:
        raise ValueError(f"adaptation method {method.name!r} is registered already")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Withdraw the method ``name`` (tests that register their own)."""
    _METHODS.pop(name, None)


def get_method(name: str) -> AdaptationMethod:
    """The method ``name``; ValueError naming the choices for any other name."""
    try:
        return _METHODS[name]()
    except KeyError:
        raise ValueError(
            f"unknown method {name!r}: choose one of {', '.join(method_names())}"
        ) from None


def method_names() -> tuple[str, ...]:
    """The registered names, in the order they were registered."""
    return tuple(_METHODS)


def method_label(name: str) -> str:
    """How reports print the method ``name`` (its label, else the name itself)."""
    method = _METHODS.get(name)
    return (method.label or method.name) if method is not None else name
